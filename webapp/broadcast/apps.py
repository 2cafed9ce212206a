from django.apps import AppConfig


class BroadcastConfig(AppConfig):
    name = "webapp.broadcast"
    label = "broadcast"
