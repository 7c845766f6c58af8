from rest_framework.routers import DefaultRouter

from dashboard.api import PortalLinkViewSet
from deliveries.api import DeliveryViewSet, ReplayJobViewSet
from subscriptions.api import EndpointViewSet, EventTypeViewSet, TenantViewSet
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

urlpatterns = [
    *router.urls,
]
