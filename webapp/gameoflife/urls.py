from django.urls import path

app_name = "gameoflife"
urlpatterns: list = []
