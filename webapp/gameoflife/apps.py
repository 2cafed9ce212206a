from django.apps import AppConfig


class GameoflifeConfig(AppConfig):
    name = "webapp.gameoflife"
    label = "gameoflife"
