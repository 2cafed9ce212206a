"""A minimal Django project for the library's tests: what ``django-admin startproject`` writes,
plus ``ws4redis_server`` at the end of INSTALLED_APPS, the Redis the tests start and a directory of
static test fixtures. Nothing else is set, so the library's own defaults are what the tests see."""
import os
from pathlib import Path

WORK = Path(os.environ["WS4R_LIBRARY_TEST_DIR"])

SECRET_KEY = "library-tests"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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
ROOT_URLCONF = "library_urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [Path(__file__).resolve().parent / "templates"],
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
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": WORK / "db.sqlite3",
                         "TEST": {"NAME": WORK / "test-db.sqlite3"}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = WORK / "static"
# django-websocket-redis 0.6.0's jQuery client and jQuery, served as /static/js/... for
# tests/library/test_ws4redis_client.py (see the LICENSE notes there).
STATICFILES_DIRS = [Path(__file__).resolve().parent / "fixtures" / "ws4redis-0.6"]

WS4REDIS_CONNECTION = {"url": os.environ["REDIS_URL"]}
