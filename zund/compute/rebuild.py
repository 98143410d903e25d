"""Rebuild: recreate a container's runtime object from its image (or a new one).

Zun's behaviour (``POST /v1/containers/{id}/rebuild[?image=…&image_driver=…]``):
the container keeps its uuid, name, node, resources, environment and volumes; the
runtime object is replaced by a fresh one made from the image. Accepted in
Created, Running, Stopped and Error (``states.VALID_STATES``): a rebuild is also
how a user repairs a container whose runtime object is broken or lost. A container
that was Running is started again; any other ends Created.

Order, so that a failure costs as little as possible:
1. the image is made available first (pull, Glance download, registry login); a
   failure there leaves the old runtime object untouched (the action ends in Error
   with the reason, the record keeps its image);
2. the old runtime object is stopped and removed — its volumes are not (named and
   size-only volumes outlive the runtime object; ``zund.compute.volumes``);
3. the new object is made with the same uuid and the record's mounts (injected
   files written again) and started if the container was Running.
A failure in 2-3 leaves the container in Error with the reason; a new rebuild (or
a delete) repairs it.

Called by ``Lifecycle.rebuild`` only (which has claimed the container: task_state
``container_rebuilding``); runs under the container's lock.
"""

from __future__ import annotations

import traceback

from twisted.logger import Logger

from zund.common import errors
from zund.compute import states
from zund.runtimes.base import RuntimeStatus

log = Logger()


async def ensure_image(lc, rt, rec, spec) -> None:
    """The image of ``rec`` in the runtime's engine, the way a create gets it."""
    if rec.image_driver == "glance":
        if lc.glance is None:
            raise errors.ImagePullFailed(
                image=rec.image, reason=f"node {lc.config.node} has no Glance configured")
        await lc.glance.fetch(rec.image)
        await rt.ensure_image(spec.image, "ifnotpresent")
    else:
        await rt.ensure_image(spec.image, spec.image_pull_policy, await lc.registry_auth(rec))


async def run_rebuild(lc, uuid: str, image: str | None, image_driver: str | None,
                      action_id: int, spec_of) -> None:
    """The background half of a claimed rebuild (see the module docstring).
    ``spec_of(rec) -> ContainerSpec``: the lifecycle's (this module must not import
    it back)."""
    async with lc.locks[uuid]:
        try:
            rec = await lc.store.get_container(uuid)
        except errors.ContainerNotFound:
            return
        was_running = rec.status == states.RUNNING
        target = rec.copy(image=image or rec.image,
                          image_driver=image_driver or rec.image_driver)
        rt = None
        try:
            rt = lc.runtime(rec)
            spec = spec_of(target)
            await ensure_image(lc, rt, target, spec)
        except errors.ZundError as e:
            # nothing was touched: the container stays what it was
            rec.task_state = None
            rec.status_reason = f"rebuild failed: {e}"
            await lc.store.save_container(rec)
            await lc.store.finish_action(action_id, message=str(e), result="Error",
                                         traceback=traceback.format_exc())
            log.warn("compute.container.rebuild_failed uuid={uuid} reason={reason}",
                     uuid=uuid, reason=str(e))
            return
        rec = target
        rec.status = states.REBUILDING
        rec.status_reason = None
        await lc.store.save_container(rec)
        try:
            try:
                await rt.stop(uuid, lc.config.stop_timeout_s)
            except errors.RuntimeObjectNotFound:
                pass
            await rt.remove(uuid, force=True)
            await lc.volumes.prepare(rt, rec)
            if lc.networks is not None:  # same ports: the sandbox / the guest's NICs
                spec = await lc.networks.prepare(rec, spec)
            state = await rt.create(spec)
            rec.container_id = state.runtime_id
            rec.ports = sorted(state.ports)
            rec.status = states.CREATED
            rec.exit_code = None
            if was_running:
                await rt.start(uuid)
                if lc.networks is not None:
                    await lc.networks.started(rec)
                state = await rt.inspect(uuid)
            lc.apply_state(rec, state)
            if state.status == RuntimeStatus.CREATED:
                rec.status, rec.status_detail = states.CREATED, "Created"
            rec.task_state = None
            await lc.store.save_container(rec)
            await lc.store.finish_action(action_id)
        except errors.ContainerNotFound:
            return
        except errors.ZundError as e:
            await lc.fail(rec, e, action_id, "rebuild")
            return
        log.info("compute.container.rebuilt uuid={uuid} image={image} status={status}",
                 uuid=uuid, image=rec.image, status=rec.status)
