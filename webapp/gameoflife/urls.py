from django.urls import path

from . import views

app_name = "gameoflife"
urlpatterns = [path("", views.watch, name="watch")]
