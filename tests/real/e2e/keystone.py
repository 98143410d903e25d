"""The real Keystone that tools/keystone.sh started (tools/run-tests.sh exports
``ZUND_KEYSTONE_ENV``, the KEY=VALUE file it wrote), and what tests need of it:
tokens for its users, the node config for ``auth_strategy = keystone``, and the
catalog's ``container`` endpoint pointed at the node under test.

Identities (tools/keystone.sh): admin (project admin), a-admin / a-member /
a-reader (project-a), b-member (project-b), zund (the service user)."""

from __future__ import annotations

import os

import attrs
import pytest

from tests.support.services import service_env
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3


@attrs.frozen
class Keystone:
    auth_url: str  # .../v3
    password: str
    region: str
    service_user: str
    service_project: str

    def auth(self, user: str, project: str) -> v3.Password:
        return v3.Password(auth_url=self.auth_url, username=user, password=self.password,
                           project_name=project, user_domain_name="Default",
                           project_domain_name="Default")

    def session(self, user: str = "admin", project: str = "admin") -> ks_session.Session:
        return ks_session.Session(auth=self.auth(user, project))

    def token(self, user: str, project: str) -> str:
        return self.session(user, project).get_token()

    def node_config(self) -> dict:
        """Sections for a zund node authenticating with this Keystone."""
        return {
            "DEFAULT": {"auth_strategy": "keystone"},
            "keystone_authtoken": {
                "www_authenticate_uri": self.auth_url, "auth_url": self.auth_url,
                "auth_type": "password", "username": self.service_user,
                "password": self.password, "project_name": self.service_project,
                "user_domain_name": "Default", "project_domain_name": "Default",
                "region_name": self.region, "service_token_roles_required": "true",
            },
        }

    def point_container_endpoints_at(self, url: str) -> None:
        """Every ``container`` endpoint of the catalog now says ``url``."""
        s = self.session()
        services = s.get("/services?type=container", endpoint_filter={
            "service_type": "identity", "interface": "public"}).json()["services"]
        assert services, "zund is not registered in the catalog (tools/keystone.sh)"
        for svc in services:
            eps = s.get(f"/endpoints?service_id={svc['id']}", endpoint_filter={
                "service_type": "identity", "interface": "public"}).json()["endpoints"]
            for ep in eps:
                s.patch(f"/endpoints/{ep['id']}", json={"endpoint": {"url": url}},
                        endpoint_filter={"service_type": "identity", "interface": "public"})

    def openstack_env(self, user: str, project: str) -> dict:
        """A tenant's shell: password auth, no endpoint override, nothing else OS_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env.update(OS_AUTH_URL=self.auth_url, OS_IDENTITY_API_VERSION="3",
                   OS_USERNAME=user, OS_PASSWORD=self.password, OS_PROJECT_NAME=project,
                   OS_USER_DOMAIN_NAME="Default", OS_PROJECT_DOMAIN_NAME="Default",
                   OS_REGION_NAME=self.region)
        return env


@pytest.fixture(scope="session")
def real_keystone() -> Keystone:
    """The run's Keystone. Fails (never skips) when tools/keystone.sh did not run."""
    values = service_env("Keystone", "ZUND_KEYSTONE_ENV", "keystone.sh")
    return Keystone(auth_url=values["OS_AUTH_URL"], password=values["ZUND_KEYSTONE_PASSWORD"],
                    region=values["OS_REGION_NAME"],
                    service_user=values["ZUND_KEYSTONE_SERVICE_USER"],
                    service_project=values["ZUND_KEYSTONE_SERVICE_PROJECT"])
