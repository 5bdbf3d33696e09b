"""Refuse multipart request bodies: nothing on the site uploads files, and Django 1.11's
MultiPartParser has flaws later releases fixed (CVE-2023-24580: a body of unbounded parts exhausts
the worker; CVE-2021-31542: file names that climb out of the upload directory): a multipart body
never reaches it."""
import logging

from django.http import JsonResponse

from chat.exceptions import ClientError

logger = logging.getLogger(__name__)


def refuse_multipart(get_response):
    """Middleware, before anything reads request.POST (CsrfViewMiddleware does): a multipart body is
    answered 415 unread."""
    def middleware(request):
        if request.META.get("CONTENT_TYPE", "").strip().lower().startswith("multipart/"):
            logger.info("Refused a multipart %s %s", request.method, request.path)
            error = ClientError("unsupported_media_type",
                                "multipart bodies are not accepted: send application/x-www-form-urlencoded")
            return JsonResponse(error.as_frame(), status=415)
        return get_response(request)
    return middleware
