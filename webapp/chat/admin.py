from django.contrib import admin

from .models import Message, PrivateMessage, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ("slug", "title", "group", "created_by", "created_at")
    list_filter = ("group",)
    search_fields = ("slug", "title")
    raw_id_fields = ("created_by",)


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "room", "author", "text", "created_at")
    list_filter = ("room",)
    search_fields = ("text", "author__username")
    raw_id_fields = ("room", "author")
    date_hierarchy = "created_at"


@admin.register(PrivateMessage)
class PrivateMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "sender", "recipient", "text", "created_at")
    search_fields = ("text", "sender__username", "recipient__username")
    raw_id_fields = ("sender", "recipient")
    date_hierarchy = "created_at"
