from django.apps import AppConfig


class EchoConfig(AppConfig):
    name = "webapp.echo"
    label = "echo"
