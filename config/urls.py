from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from deliveries import inbox_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("inbox/<str:token>/", inbox_views.receive, name="inbox-receive"),
]

handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
