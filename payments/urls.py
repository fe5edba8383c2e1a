from django.urls import path

from payments import views

urlpatterns = [
    path("webhooks/<str:provider>/<str:connection_id>/", views.webhook, name="webhook"),
]
