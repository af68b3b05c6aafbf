"""GET /api/health/: is the database up, is Redis up, and how fast do they answer."""

import time

from django.db import connection
from django_redis import get_redis_connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from flashsale.api_errors import DATABASE_DOWN


def probe_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DATABASE_DOWN:
        connection.close_if_unusable_or_obsolete()
        return {"status": "down", "latency_ms": None}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def probe_redis() -> dict:
    started = time.perf_counter()
    try:
        get_redis_connection("default").ping()
    except Exception:  # any failure to reach Redis means "down", whatever the client raises
        return {"status": "down", "latency_ms": None}
    return {"status": "up", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


_Dependency = inline_serializer("DependencyHealth", {
    "status": serializers.ChoiceField(choices=["up", "down"]),
    "latency_ms": serializers.FloatField(allow_null=True),
})


class HealthApi(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Service health",
        description="200 `ok`; 200 `degraded` when Redis is down (purchases go on without rate limits); "
                    "503 `down` when the database is down.",
        responses={
            (code, "application/json"): inline_serializer(f"Health{code}", {
                "status": serializers.ChoiceField(choices=["ok", "degraded", "down"]),
                "database": _Dependency,
                "redis": _Dependency,
            })
            for code in (200, 503)
        },
    )
    def get(self, request):
        database, redis = probe_database(), probe_redis()
        if database["status"] != "up":
            overall, status = "down", 503
        elif redis["status"] != "up":
            overall, status = "degraded", 200
        else:
            overall, status = "ok", 200
        body = {"status": overall, "database": database, "redis": redis}
        return Response(body, status=status, headers={"Cache-Control": "no-store"})
