"""The real neutron-server that tools/neutron.sh started (Keystone-authenticated,
ML2 with tests/support/neutron_mech.py; tools/run-tests.sh exports
``ZUND_NEUTRON_ENV``, the KEY=VALUE file it wrote), and what tests need of it:
adapters as any Keystone user (Neutron found in the catalog, service type
``network``) and request contexts carrying those users' real tokens."""

from __future__ import annotations

import attrs
import pytest
from keystoneauth1 import adapter as ks_adapter

from tests.real.e2e.keystone import Keystone
from tests.support.services import service_env
from zund.common.context import RequestContext


@attrs.define
class Neutron:
    url: str
    keystone: Keystone
    _sessions: dict = attrs.field(factory=dict)

    def session(self, user: str, project: str):
        key = (user, project)
        if key not in self._sessions:  # one token per identity for the whole run
            self._sessions[key] = self.keystone.session(user, project)
        return self._sessions[key]

    def adapter(self, user: str = "admin", project: str = "admin") -> ks_adapter.Adapter:
        """Neutron as ``user`` of ``project``, found in the Keystone catalog."""
        return ks_adapter.Adapter(self.session(user, project), service_type="network",
                                  interface="public", region_name=self.keystone.region)

    def service_adapter(self) -> ks_adapter.Adapter:
        """zund's service user (what ``[neutron]`` auth options name)."""
        return self.adapter(self.keystone.service_user, self.keystone.service_project)

    def context(self, user: str, project: str) -> RequestContext:
        """A request context as zund's keystone auth step builds it, real token inside."""
        s = self.session(user, project)
        roles = ("admin", "member", "reader") if "admin" in user else ("member", "reader")
        return RequestContext(user_id=s.get_user_id(), project_id=s.get_project_id(),
                              roles=roles, is_admin="admin" in roles, user_name=user,
                              project_name=project, auth_token=s.get_token())


@pytest.fixture(scope="session")
def real_neutron(real_keystone) -> Neutron:  # noqa: F811
    """The run's Neutron. Fails (never skips) when tools/neutron.sh did not run."""
    values = service_env("Neutron", "ZUND_NEUTRON_ENV", "neutron.sh")
    return Neutron(url=values["ZUND_NEUTRON_URL"], keystone=real_keystone)
