"""Settings for the demo site, read from the environment with safe local defaults.

Environment variables:
    DJANGO_DEBUG            "1" turns DEBUG on (off by default).
    DJANGO_SECRET_KEY       required when DEBUG is off outside local runs (a local default is used
                            with a warning otherwise).
    DJANGO_ALLOWED_HOSTS    comma-separated, default "127.0.0.1,localhost".
    CSRF_TRUSTED_ORIGINS    comma-separated origins (scheme://host:port).
    DATABASE_URL            e.g. postgres://user@127.0.0.1:5432/db; SQLite file by default.
    REDIS_URL               default redis://127.0.0.1:6379/0.
    STATIC_ROOT             where collectstatic writes and nginx serves /static/ from.
"""
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = os.environ.get("DJANGO_DEBUG", "0").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY",
    # Only good for a machine of one's own: production sets DJANGO_SECRET_KEY.
    "insecure-local-key-set-DJANGO_SECRET_KEY-in-production",
)
ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "webapp.home",
    "webapp.echo",
    "webapp.gameoflife",
    "webapp.chat",
    "webapp.broadcast",
    "webapp.accounts",
    "ws4redis_server",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "webapp" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "ws4redis_server.context_processors.default",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60, conn_health_checks=True
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Sessions are read by the WebSocket loop on every handshake: keep them in Redis first
# (the database is only the fallback), so the loop does not query the database. Django's
# RedisCache only reaches plain redis:// servers; with a redis+sentinel:// or redis+cluster://
# REDIS_URL the cache goes through the library's client instead (ws4redis_server.cache).
CACHES = {
    "default": {
        "BACKEND": ("ws4redis_server.cache.RedisCache" if "+" in REDIS_URL.partition("://")[0]
                    else "django.core.cache.backends.redis.RedisCache"),
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "webapp",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

if os.environ.get("DJANGO_FAST_PASSWORD_HASHER") == "1":
    # For test runs only: a cheap hasher first, so creating and logging in users is fast.
    PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]

# Checked when people sign up or change their password.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "webapp" / "static"]

# ws4redis_server (names as in django-websocket-redis).
WEBSOCKET_URL = "/ws/"
WS4REDIS_CONNECTION = {"url": REDIS_URL}
WS4REDIS_EXPIRE = int(os.environ.get("WS4REDIS_EXPIRE", "3600"))
WS4REDIS_HEARTBEAT = "--heartbeat--"
# Seconds between the server's pings to an idle socket (environment: for tests).
WS4REDIS_WAKE_INTERVAL = float(os.environ.get("WS4REDIS_WAKE_INTERVAL", "20"))
WS4REDIS_PREFIX = os.environ.get("WS4REDIS_PREFIX") or None
# permessage-deflate for clients that offer it (off by default; environment: for tests).
WS4REDIS_COMPRESSION = os.environ.get("WS4REDIS_COMPRESSION") == "1"
# Pages of other sites may not open sockets here: the default allows ALLOWED_HOSTS (any port)
# and CSRF_TRUSTED_ORIGINS; WS4REDIS_ALLOWED_ORIGINS would replace that list.
# Only the pub/sub demo page lets visitors who are not logged in publish from their socket.
WS4REDIS_ANONYMOUS_PUBLISH = ["demo"]
# Per socket: a client sending more than this (messages per second, after a burst) is closed
# with 1008; one that reads too slowly for its outbox is closed with 4000.
WS4REDIS_RATE_LIMIT = 500
WS4REDIS_RATE_BURST = 1000
WS4REDIS_OUTBOX_MESSAGES = 20_000
WS4REDIS_OUTBOX_BYTES = 4 * 1024 * 1024
# Facility "broadcast" is fed by the admin only: sockets may listen there, not publish.
# Chat rooms ("chat.<room>") only for who may read them; "chat-direct" only on the user audience.
WS4REDIS_ALLOWED_CHANNELS = "webapp.channel_permissions.allowed_channels"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django": {"level": "INFO"}},
}
