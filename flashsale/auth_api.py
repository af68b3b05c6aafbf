"""POST /api/auth/token/: trade a username and password for a DRF token."""

from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import permissions, serializers
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import APIView

from flashsale.accounts import canonical_username
from flashsale.authentication import remember_token
from flashsale.error_codes import ErrorCode
from flashsale.errors import InvalidInput
from flashsale.openapi import error_responses
from flashsale.ratelimits import enforce_login_limits
from flashsale.serializers import StrictSerializer


class TokenRequestSerializer(StrictSerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenApi(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(
        summary="Get your API token",
        request=TokenRequestSerializer,
        responses={
            200: inline_serializer("Token", {"token": serializers.CharField()}),
            **error_responses(ErrorCode.INVALID, ErrorCode.RATE_LIMITED),
        },
    )
    def post(self, request):
        # Rate limits come before input checks, so the username is read as sent (or blank).
        try:
            tried = request.data.get("username") if isinstance(request.data, dict) else None
        except ParseError:
            tried = None  # the serializer below answers the malformed body, after the limits
        enforce_login_limits(request, username=tried if isinstance(tried, str) else "")
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        credentials = serializer.validated_data
        user = authenticate(request._request, username=canonical_username(credentials["username"]),
                            password=credentials["password"])
        if user is None or not user.is_active:
            raise InvalidInput("Unable to log in with those credentials.")
        token, _created = Token.objects.get_or_create(user=user)
        remember_token(token)  # the shopper's next requests authenticate from the cache
        return Response({"token": token.key})
