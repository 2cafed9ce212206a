"""The figures of the WebSocket loop: ``""`` the live page, ``json`` its data, ``metrics`` for
Prometheus."""
from django.urls import path

from . import views

app_name = "ws4redis"
urlpatterns = [
    path("", views.stats_page, name="stats"),
    path("json", views.stats_json, name="stats-json"),
    path("metrics", views.prometheus, name="metrics"),
]
