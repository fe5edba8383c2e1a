"""The JSON API: one NinjaAPI under /api/v1/, one error envelope."""

from ninja import NinjaAPI

api = NinjaAPI(title="market40 API", version="1", urls_namespace="api")
