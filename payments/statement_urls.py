from django.urls import path

from payments import statement_views

urlpatterns = [
    path(
        "manage/<str:market_code>/statements/",
        statement_views.statement_upload,
        name="statement-upload",
    ),
]
