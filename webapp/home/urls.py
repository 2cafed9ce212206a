from django.urls import path

from . import views

app_name = "home"
urlpatterns = [
    path("", views.index, name="index"),
    path("pubsub/", views.pubsub, name="pubsub"),
    path("pubsub/publish/", views.publish, name="publish"),
    path("favicon.ico", views.favicon, name="favicon"),
]
