"""Running a route: each primary call tries the deployments in order until one serves it.

For every leg (a call of the primary plan) the router walks the route's options in order:

- a deployment whose provider has no credentials is passed over without an attempt;
- one whose circuit breaker is open is passed over while another deployment may still serve the
  leg; when none is left, cooling ones are tried anyway (a cooling period exists to route around a
  failing provider, not to refuse requests nobody else can serve);
- otherwise the leg's calls run (bounded by the request's and the gateway's fan-out slots), and the
  outcome is one :class:`~normalization.response.Attempt` and one breaker record. A failure that
  :func:`~normalization.routing.failover.fails_over` moves on to the next deployment; any other
  failure, or any failure of a forced route, ends the request.

With ``on_partial`` (a streamed request) the partial images of every attempt are passed on as they
arrive, also those of an attempt that then fails over: they are previews, already sent to the client
when the failure comes, and the final images (from whichever deployment served) follow them.

Legs run concurrently, all or error: a leg that fails everywhere cancels the others (and with them
their upstream jobs). When every deployment failed, the last failure is raised with a message naming
each provider tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import GatewayError, ProviderNotConfiguredError
from core.held_bytes import HeldBytes
from normalization.emulation.fanout import FanOut, collect
from normalization.input_spill import InputSpill, SpillingTracker, call_holders
from normalization.metering import CallObserver, MeteredAdapter, Spend
from normalization.response import Attempt
from normalization.routing.admission_hooks import UNBOUNDED, RequestAdmission
from normalization.routing.breaker import BreakerStore
from normalization.routing.failover import counts_against_provider, fails_over
from normalization.routing.pending_inputs import PendingInputs
from normalization.routing.route import Option, Route
from providers.base import GeneratedImage, ImageAdapter, OnPartial, UpstreamCall, UpstreamTracker, adapter_for


@dataclass(frozen=True)
class ServedLeg:
    """One leg's images and the option (index into ``route.options``) that made them."""

    option: int
    images: list[GeneratedImage]


@dataclass(frozen=True)
class Served:
    """What a route's run produced: each leg's images, in leg order."""

    legs: list[ServedLeg]

    def images(self) -> list[GeneratedImage]:
        return [image for leg in self.legs for image in leg.images]


@dataclass(frozen=True)
class _Run:
    """What every attempt of one route's run shares."""

    per_request: asyncio.Semaphore
    attempts: list[Attempt]
    tracker: UpstreamTracker | None
    on_partial: OnPartial | None
    needed_later: bool
    """Whether another deployment may take a leg later (see :func:`_may_fail_over`)."""
    inputs: PendingInputs
    waiting: _WaitingCalls


class _WaitingCalls:
    """How many of a run's calls still wait on their upstream jobs. The request's admission slot is
    taken back before the last of them fetches its results; the others fetch theirs at once, since
    taking the slot for them would hold it while the request's other jobs still run. Should a call
    start after that (a failover), the slot is handed on again."""

    def __init__(self, admission: RequestAdmission) -> None:
        self.count = 0
        self._admission = admission
        self._slot_back = False

    def started(self, calls: int) -> None:
        if self._slot_back:
            self._slot_back = False
            self._admission.hand_slot_on()
        self.count += calls

    def ended(self, calls: int) -> None:
        """``calls`` ended without reporting their jobs finished (failed, cancelled, or one-call upstreams)."""
        self.count -= calls

    async def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._slot_back = True
            await self._admission.take_slot_back()


class Router:
    """Runs routes through the configured adapters. One per app; no per-request state."""

    def __init__(
        self,
        adapters: Mapping[str, ImageAdapter],
        breakers: BreakerStore,
        fanout: FanOut,
        observer: CallObserver,
        spill: InputSpill | None = None,
    ) -> None:
        self._adapters = adapters
        self.breakers = breakers
        self._fanout = fanout
        self._observer = observer
        self._spill = spill or InputSpill(None)

    async def run(
        self,
        route: Route,
        *,
        spend: Spend,
        attempts: list[Attempt],
        tracker: UpstreamTracker | None = None,
        on_partial: OnPartial | None = None,
        admission: RequestAdmission = UNBOUNDED,
    ) -> Served:
        """Every leg of ``route`` served by some deployment, or the error that ends the request.

        Each attempt is appended to ``attempts`` as it ends (the caller keeps them when this raises);
        each successful call's cost is added to ``spend`` as it completes. ``on_partial``: told the
        partial images of every attempt's calls (see the module docstring). ``admission`` (the
        request's, when it has one) is told ``inputs_sent()`` (maybe more than once) when upstreams
        have every leg's calls, accepted for an adapter that reports its jobs
        (:attr:`providers.base.ImageAdapter.reports_acceptance`), started on one that does not; asked
        to ``reserve_intake`` before a failover sends a leg's inputs again after that (see
        :mod:`normalization.routing.pending_inputs`); asked to ``take_slot_back()`` before the run's
        last upstream job fetches its results, on adapters whose results wait upstream
        (:meth:`providers.base.UpstreamTracker.finished`), and to ``hand_slot_on()`` should a call
        start after that.
        """
        per_request = self._fanout.request_slots()
        adapters = [self._metered(option, spend) for option in route.options]
        inputs = PendingInputs(len(route.options[0].legs), admission.inputs_sent, admission.reserve_intake)
        run = _Run(
            per_request,
            attempts,
            tracker,
            on_partial,
            needed_later=_may_fail_over(route),
            inputs=inputs,
            waiting=_WaitingCalls(admission),
        )
        if not run.needed_later:
            # Every call's inputs pinned before any leg starts: a leg whose call was accepted drops
            # them only once no other leg still has to send them (a leg may start late: a breaker's
            # admission can wait on Redis).
            await self._spill.pin(held for leg in route.options[0].legs for call in leg for held in call_holders(call))

        async def leg(index: int) -> ServedLeg:
            return await self._leg(route, adapters, index, run)

        tasks = [asyncio.create_task(leg(index)) for index in range(len(route.options[0].legs))]
        try:
            legs = list(await asyncio.gather(*tasks))
        except BaseException:
            await _cancel(tasks)
            raise
        finally:
            # Spilled inputs' files go with the run, however it ends (see normalization.input_spill).
            await self._spill.release(_route_holders(route))
        return Served(legs=legs)

    def _metered(self, option: Option, spend: Spend) -> ImageAdapter | ProviderNotConfiguredError:
        try:
            inner = adapter_for(self._adapters, option.deployment.provider)
        except ProviderNotConfiguredError as exc:
            return exc
        return MeteredAdapter(inner, price=option.deployment.price, spend=spend, observer=self._observer)

    async def _leg(
        self,
        route: Route,
        adapters: list[ImageAdapter | ProviderNotConfiguredError],
        index: int,
        run: _Run,
    ) -> ServedLeg:
        failures: list[tuple[str, GatewayError]] = []
        unconfigured: ProviderNotConfiguredError | None = None
        cooling: list[int] = []
        candidates = [j for j, option in enumerate(route.options) if option.legs[index]]
        for j in candidates:
            provider = route.options[j].deployment.provider
            admission = "go" if route.forced else await self.breakers.admit(provider)
            if admission == "skip":
                cooling.append(j)
                continue
            if failures:
                await run.inputs.resending(index, _inputs_size(route.options[j].legs[index]))
            outcome = await self._attempt(route, adapters[j], j, index, run, trial=admission == "trial")
            if isinstance(outcome, ServedLeg):
                return outcome
            if isinstance(outcome, ProviderNotConfiguredError):
                unconfigured = outcome
                continue
            failures.append((provider, outcome))
            if route.forced or not fails_over(outcome):
                raise outcome
        for j in cooling:  # nobody else could serve: a cooling provider is better than none
            if failures:
                await run.inputs.resending(index, _inputs_size(route.options[j].legs[index]))
            outcome = await self._attempt(route, adapters[j], j, index, run)
            if isinstance(outcome, ServedLeg):
                return outcome
            if isinstance(outcome, ProviderNotConfiguredError):
                continue
            failures.append((route.options[j].deployment.provider, outcome))
            if not fails_over(outcome):
                raise outcome
        if not failures:
            raise unconfigured or ProviderNotConfiguredError(f"no provider of model '{route.model.id}' can serve it")
        raise _every_failure(failures)

    async def _attempt(
        self,
        route: Route,
        adapter: ImageAdapter | ProviderNotConfiguredError,
        option_index: int,
        index: int,
        run: _Run,
        *,
        trial: bool = False,
    ) -> ServedLeg | GatewayError:
        """One deployment's try at one leg: its images, or the error it failed with (returned so the
        caller decides between failing over and raising). ``trial``: the attempt holds its provider's
        half-open trial, handed back should the attempt end without an outcome."""
        if isinstance(adapter, ProviderNotConfiguredError):
            return adapter  # never a trial: a provider without credentials is never counted as failing
        option = route.options[option_index]
        calls = option.legs[index]
        deployment = option.deployment
        started = time.monotonic()
        try:
            images = await self._calls(adapter, calls, run, index)
        except ProviderNotConfiguredError as exc:
            return exc
        except asyncio.CancelledError:
            # The client left or the deadline passed: the trial told nothing; let the next request try.
            if trial:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.breakers.abandon(deployment.provider))
            raise
        except GatewayError as exc:
            run.attempts.append(_attempt(deployment.provider, deployment.upstream, started, exc))
            await self.breakers.record(deployment.provider, failed=counts_against_provider(exc))
            return exc
        run.attempts.append(_attempt(deployment.provider, deployment.upstream, started, None))
        await self.breakers.record(deployment.provider, failed=False)
        return ServedLeg(option=option_index, images=images)

    async def _calls(
        self, adapter: ImageAdapter, calls: tuple[UpstreamCall, ...], run: _Run, leg: int
    ) -> list[GeneratedImage]:
        """One attempt's calls (of ``leg``) run, their images collected. The calls' inputs are in memory
        while they are sent; each leaves memory once every attempt sending it was accepted upstream: to
        a file when another deployment may take a leg later, else for good
        (:mod:`normalization.input_spill`; such a route's calls were pinned by :meth:`run`)."""
        pinned = {call.index: call_holders(call) for call in calls}
        tracker = SpillingTracker(
            run.tracker,
            self._spill,
            pinned,
            needed_later=run.needed_later,
            on_accepted=lambda: run.inputs.leg_sent(leg),
            on_finished=run.waiting.finished,
        )
        streamed = run.on_partial is not None and any(call.partial_images for call in calls)
        run.waiting.started(len(calls))
        try:
            if run.needed_later:
                await self._spill.pin(held for group in pinned.values() for held in group)
            if streamed or not adapter.reports_acceptance:
                run.inputs.leg_sent(leg)  # its calls hold their inputs until they answer: nothing to wait for
            # Partials of this attempt reach the client as they come, even should it fail over later.
            results = await self._fanout.run(adapter, calls, tracker, run.per_request, run.on_partial)
        finally:
            run.waiting.ended(len(calls) - tracker.finished_calls)
            await tracker.end()
        return collect(calls, results)


def _inputs_size(calls: tuple[UpstreamCall, ...]) -> int:
    """The bytes of the images and masks ``calls`` send, each input once."""
    holders = {id(held): held for call in calls for held in call_holders(call)}
    return sum(held.size for held in holders.values())


def _attempt(provider: str, upstream: str, started: float, error: GatewayError | None) -> Attempt:
    return Attempt(
        provider=provider,
        upstream=upstream,
        status=200 if error is None else error.status_code,
        code=None if error is None else error.code,
        ms=round((time.monotonic() - started) * 1000),
    )


def _may_fail_over(route: Route) -> bool:
    """Whether a leg may be sent again to another deployment (so its inputs must stay at hand). A
    forced route with two deployments of its provider counts: the second is tried when the first
    is not configured."""
    return len(route.options) > 1


def _route_holders(route: Route) -> list[HeldBytes]:
    """Every input holder of ``route``'s calls, each once."""
    calls = (call for option in route.options for leg in option.legs for call in leg)
    return list({id(held): held for call in calls for held in call_holders(call)}.values())


def _every_failure(failures: list[tuple[str, GatewayError]]) -> GatewayError:
    """The last failure, its message naming each provider tried when there were several."""
    last = failures[-1][1]
    if len(failures) > 1:
        tried = "; ".join(f"{provider}: {error.message}" for provider, error in failures)
        last.message = f"every deployment of this model failed ({tried})"
        last.args = (last.message,)
    return last


async def _cancel(tasks: list[asyncio.Task[ServedLeg]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
