"""Sign-up; logging in and out are django.contrib.auth's views, under the same /accounts/."""
from django.urls import path

from . import views

urlpatterns = [path("signup/", views.signup, name="signup")]
