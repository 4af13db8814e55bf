"""REST endpoints of a host's Docker resources: containers (list, inspect, stats, bulk
actions), images, volumes and networks (list, remove, prune). Viewers read; operators change."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import request
from flask.views import MethodView

from portal.core.api_base import Blueprint
from portal.hosts import container_detail, host_objects, resources
from portal.hosts.resource_schemas import (
    ContainerActionResultSchema,
    ContainerActionSchema,
    ContainerDetailSchema,
    ContainerQuerySchema,
    ContainerRowSchema,
    ContainerStatsSchema,
    ImageRemoveQuerySchema,
    ImageRowSchema,
    NetworkRowSchema,
    PruneResultSchema,
    PruneSchema,
    VolumeRowSchema,
    label_mapping,
)
from portal.hosts.service import visible_host
from portal.projects.access import project_role

blp = Blueprint(
    "host_resources", __name__, url_prefix="/api/v1/hosts", description="Host Docker resources"
)
HOST = "/<id:host_id>"
CONTAINER = f"{HOST}/containers/<string(maxlength=128):container_id>"
NAME = "<string(maxlength=128):name>"


def viewer_host() -> str:
    """The name the caller reached Spectr by: where the Spectr node's published ports are."""
    return urlsplit(f"//{request.host}").hostname or "localhost"


@blp.route(f"{HOST}/containers")
class HostContainers(MethodView):
    @project_role("viewer")
    @blp.arguments(ContainerQuerySchema, location="query")
    @blp.response(200, ContainerRowSchema(many=True))
    def get(self, query: dict, host_id: int) -> Any:
        """List every container of the host (not only Spectr's), filtered by state, name, label."""
        host = visible_host(host_id, "viewer")
        found = resources.list_containers(
            host, query.get("state"), query.get("q"), query.get("managed")
        )
        return [container_detail.container_row(host, info, viewer_host()) for info in found]


# Not under containers/: a GET there is the container named "actions".
@blp.route(f"{HOST}/container-actions")
class HostContainerActions(MethodView):
    @project_role("operator")
    @blp.arguments(ContainerActionSchema)
    @blp.response(200, ContainerActionResultSchema(many=True))
    def post(self, body: dict, host_id: int) -> Any:
        """Start, stop, restart or remove containers; one result (and audit record) each."""
        host = visible_host(host_id, "operator")
        return resources.act_on_containers(host, body["action"], body["ids"], body["force"])


@blp.route(CONTAINER)
class HostContainer(MethodView):
    @project_role("viewer")
    @blp.response(200, ContainerDetailSchema)
    def get(self, host_id: int, container_id: str) -> Any:
        """Inspect a container: ports as links, env with secret values left out, mounts."""
        return container_detail.container_detail(
            visible_host(host_id, "viewer"), container_id, viewer_host()
        )


@blp.route(f"{CONTAINER}/stats")
class HostContainerStats(MethodView):
    @project_role("viewer")
    @blp.response(200, ContainerStatsSchema)
    def get(self, host_id: int, container_id: str) -> Any:
        """One resource sample of a running container: CPU, memory, network counters."""
        return container_detail.container_stats(visible_host(host_id, "viewer"), container_id)


@blp.route(f"{HOST}/images")
class HostImages(MethodView):
    @project_role("viewer")
    @blp.response(200, ImageRowSchema(many=True))
    def get(self, host_id: int) -> Any:
        """List the host's images with the containers using each."""
        return host_objects.list_images(visible_host(host_id, "viewer"))


@blp.route(f"{HOST}/images/<path:reference>")
class HostImage(MethodView):
    @project_role("operator")
    @blp.arguments(ImageRemoveQuerySchema, location="query")
    @blp.response(204)
    def delete(self, query: dict, host_id: int, reference: str) -> Any:
        """Remove an image by id (every tag) or untag one tag; 409 while containers use it."""
        host_objects.remove_image(visible_host(host_id, "operator"), reference, query["force"])


@blp.route(f"{HOST}/volumes")
class HostVolumes(MethodView):
    @project_role("viewer")
    @blp.response(200, VolumeRowSchema(many=True))
    def get(self, host_id: int) -> Any:
        """List the host's volumes with sizes and the containers mounting each."""
        return host_objects.list_volumes(visible_host(host_id, "viewer"))


# prune/<kind>, not <kind>/prune: a GET of images/prune would be the image named "prune".
@blp.route(f"{HOST}/prune/<any(images, volumes):kind>")
class HostPrune(MethodView):
    @project_role("operator")
    @blp.arguments(PruneSchema)
    @blp.response(200, PruneResultSchema)
    def post(self, body: dict, host_id: int, kind: str) -> Any:
        """Remove dangling images, or every volume no container uses (named ones too).

        Confirm with the host's name; label narrows it to objects carrying those labels.
        """
        labels = label_mapping(body["label"])
        return host_objects.prune(visible_host(host_id, "operator"), kind, body["confirm"], labels)


@blp.route(f"{HOST}/volumes/{NAME}")
class HostVolume(MethodView):
    @project_role("operator")
    @blp.response(204)
    def delete(self, host_id: int, name: str) -> Any:
        """Remove a volume; 409 while a container (running or stopped) mounts it."""
        host_objects.remove_volume(visible_host(host_id, "operator"), name)


@blp.route(f"{HOST}/networks")
class HostNetworks(MethodView):
    @project_role("viewer")
    @blp.response(200, NetworkRowSchema(many=True))
    def get(self, host_id: int) -> Any:
        """List the host's networks with the containers attached to each."""
        return host_objects.list_networks(visible_host(host_id, "viewer"))


@blp.route(f"{HOST}/networks/{NAME}")
class HostNetwork(MethodView):
    @project_role("operator")
    @blp.response(204)
    def delete(self, host_id: int, name: str) -> Any:
        """Remove a network by name or id; 409 for built-in ones or with containers attached."""
        host_objects.remove_network(visible_host(host_id, "operator"), name)
