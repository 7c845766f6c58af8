from django.urls import path

from dashboard import (
    deliveries_views,
    endpoint_choices,
    endpoint_list_views,
    endpoint_manage_views,
    endpoint_views,
    filter_views,
    inbox_views,
    overview_views,
    portal_views,
    secret_views,
    transformation_views,
)

app_name = "dashboard"

urlpatterns = [
    path("", overview_views.overview, name="overview"),
    path("endpoints/", endpoint_list_views.endpoint_list, name="endpoints"),
    path("endpoints/choices/", endpoint_choices.endpoint_choices, name="endpoint-choices"),
    path("endpoints/new/", endpoint_manage_views.endpoint_new, name="endpoint-new"),
    path("endpoints/<int:endpoint_id>/", endpoint_views.endpoint_detail, name="endpoint"),
    path(
        "endpoints/<int:endpoint_id>/settings/",
        endpoint_manage_views.endpoint_settings,
        name="endpoint-settings",
    ),
    path(
        "endpoints/<int:endpoint_id>/disable/",
        endpoint_manage_views.endpoint_disable_view,
        name="endpoint-disable",
    ),
    path(
        "endpoints/<int:endpoint_id>/enable/",
        endpoint_manage_views.endpoint_enable_view,
        name="endpoint-enable",
    ),
    path(
        "endpoints/<int:endpoint_id>/delete/",
        endpoint_manage_views.endpoint_delete_view,
        name="endpoint-delete",
    ),
    path(
        "endpoints/<int:endpoint_id>/secret/reveal/",
        secret_views.secret_reveal,
        name="endpoint-secret-reveal",
    ),
    path(
        "endpoints/<int:endpoint_id>/secret/rotate/",
        secret_views.secret_rotate,
        name="endpoint-secret-rotate",
    ),
    path("endpoints/<int:endpoint_id>/test/", endpoint_views.send_test, name="endpoint-test"),
    path(
        "endpoints/<int:endpoint_id>/verify/",
        endpoint_views.send_challenge,
        name="endpoint-verify",
    ),
    path("endpoints/<int:endpoint_id>/recover/", deliveries_views.recover, name="endpoint-recover"),
    path(
        "endpoints/<int:endpoint_id>/transformation/",
        transformation_views.transformation_page,
        name="endpoint-transformation",
    ),
    path(
        "endpoints/<int:endpoint_id>/transformation/preview/",
        transformation_views.transformation_preview,
        name="endpoint-transformation-preview",
    ),
    path(
        "endpoints/<int:endpoint_id>/transformation/save/",
        transformation_views.transformation_save,
        name="endpoint-transformation-save",
    ),
    path(
        "endpoints/<int:endpoint_id>/filter-test/",
        filter_views.filter_test,
        name="endpoint-filter-test",
    ),
    path(
        "endpoints/<int:endpoint_id>/filter/save/",
        filter_views.filter_save,
        name="endpoint-filter-save",
    ),
    path("deliveries/", deliveries_views.delivery_list, name="deliveries"),
    path("deliveries/replay/", deliveries_views.replay_selected, name="replay-selected"),
    path("deliveries/<int:delivery_id>/", deliveries_views.delivery_detail, name="delivery"),
    path(
        "deliveries/<int:delivery_id>/replay/", deliveries_views.replay_one, name="delivery-replay"
    ),
    path("dead-letters/", deliveries_views.dead_letters, name="dead-letters"),
    path("replays/<int:job_id>/", deliveries_views.replay_job, name="replay-job"),
    path("inbox/", inbox_views.inbox, name="inbox"),
    path("inbox/new/", inbox_views.inbox_create, name="inbox-create"),
    path("inbox/endpoint/", inbox_views.inbox_endpoint, name="inbox-endpoint"),
    path("portal/<str:token>/", portal_views.open_portal, name="portal"),
]
