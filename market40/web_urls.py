from django.urls import path

from market40 import views

urlpatterns = [
    path("", views.home, name="home"),
    path("manage/", views.manage_home, name="manage-home"),
]
