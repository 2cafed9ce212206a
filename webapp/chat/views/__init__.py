"""Views of the chat: rooms (``rooms``) and private messages (``private``)."""
