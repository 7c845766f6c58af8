from django.contrib import admin
from django.urls import path

from deliveries import inbox_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("inbox/<str:token>/", inbox_views.receive, name="inbox-receive"),
]
