from rest_framework.routers import DefaultRouter

from dashboard.api import PortalLinkViewSet, TenantPortalLinkViewSet
from deliveries.api import DeliveryViewSet, ReplayJobViewSet
from subscriptions.api import EndpointViewSet, EventTypeViewSet
from subscriptions.tenants_api import TenantApiKeyViewSet, TenantViewSet
from webhooks.api import EventViewSet

router = DefaultRouter()
router.include_root_view = False
router.register("event-types", EventTypeViewSet, basename="event-type")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("events", EventViewSet, basename="event")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("replay-jobs", ReplayJobViewSet, basename="replay-job")
router.register("portal-links", PortalLinkViewSet, basename="portal-link")
router.register("tenants", TenantViewSet, basename="tenant")
router.register(r"tenants/(?P<tenant_slug>[^/.]+)/api-keys", TenantApiKeyViewSet, "tenant-api-key")
router.register(
    r"tenants/(?P<tenant_slug>[^/.]+)/portal-links", TenantPortalLinkViewSet, "tenant-portal-link"
)

urlpatterns = [
    *router.urls,
]
