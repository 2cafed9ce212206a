from django.urls import path

app_name = "broadcast"
urlpatterns: list = []
