"""market40's URLs plus ``POST /bench/baseline/``: a bare Django view answering
``{"success": true}`` through the same middleware, the floor any webhook endpoint pays
in the same server (``bench_webhooks.py``)."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
def baseline(request: HttpRequest) -> JsonResponse:
    request.body  # read the body as the webhook view does  # noqa: B018
    return JsonResponse({"success": True})


urlpatterns = [
    path("bench/baseline/", baseline),
    path("", include("market40.urls")),
]
