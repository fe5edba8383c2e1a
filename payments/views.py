"""The webhook endpoint: POST /webhooks/<provider>/<connection-id>/.

Status codes are deliberate (STYLE.md habit 6): 401 for a wrong signature, 400 for a
malformed body, 200 for every authentic delivery we stored (duplicates and unmatched
transfers included, so the provider stops retrying), 404 for an unknown connection,
5xx only for our own bugs.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from market40.errors import NotFound
from payments.providers import PROVIDERS
from payments.services import webhook_receive


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, provider: str, connection_id: str) -> JsonResponse:
    if provider not in PROVIDERS:
        return JsonResponse({"success": False, "message": "Không có nhà cung cấp này."}, status=404)
    try:
        delivery = webhook_receive(
            provider=provider,
            connection_id=connection_id,
            body=request.body,
            headers=dict(request.headers),
            remote_addr=request.META.get("REMOTE_ADDR", ""),
        )
    except NotFound as error:
        return JsonResponse({"success": False, "message": error.message}, status=404)
    return JsonResponse(delivery.body, status=delivery.status)
