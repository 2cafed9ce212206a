from django.urls import path

from .views import private, rooms

app_name = "chat"
urlpatterns = [
    path("", rooms.rooms, name="rooms"),
    path("direct/", private.index, name="direct-index"),
    path("direct/<str:username>/", private.conversation, name="direct"),
    path("direct/<str:username>/messages/", private.messages, name="direct-messages"),
    path("<slug:slug>/", rooms.room, name="room"),
    path("<slug:slug>/messages/", rooms.messages, name="messages"),
    path("<slug:slug>/presence/", rooms.presence, name="presence"),
]
