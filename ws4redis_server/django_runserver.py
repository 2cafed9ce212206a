"""``WSGI_APPLICATION = "ws4redis_server.django_runserver.application"``: the drop-in for
django-websocket-redis's ``ws4redis.django_runserver.application``.

ws4redis needed that setting in development: importing its module patched ``runserver`` and its
``application`` sent requests under ``WEBSOCKET_URL`` to the WebSocket loop. Here ``runserver``
serves WebSockets by itself (``ws4redis_server.management.commands.runserver``), whatever
``WSGI_APPLICATION`` says, so this ``application`` is the project's plain Django WSGI
application, and a ws4redis site moves by changing the import path only. Better still, point
``WSGI_APPLICATION`` back at the project's own ``<project>.wsgi.application`` and drop this one.
"""
from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
