"""The wildcard and explicit-name rules of one type's subscription, case by case (xDS protocol, "How the client
specifies what resources to return"), where mutation testing (scripts/mutation.sh subscription) found the stream
tests leave room: what is answered, and when the legacy wildcard ends.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from egress_xds.type_urls import CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL, LISTENER_TYPE_URL, WILDCARD
from egress_xds.xds.subscription import Subscription


def test_a_new_subscription_covers_nothing() -> None:
    subscription = Subscription()
    assert not subscription.covers("a")
    assert repr(subscription) == "Subscription(wildcard=False, names=[])"


def test_sotw_an_empty_first_request_is_the_legacy_wildcard_for_listeners_and_clusters() -> None:
    for type_url in (LISTENER_TYPE_URL, CLUSTER_TYPE_URL):
        subscription = Subscription()
        assert subscription.replace([], type_url=type_url, first=True) is True
        assert subscription.covers("anything")
        # Envoy ACKs a wildcard with an empty list: still everything, nothing new to answer.
        assert subscription.replace([], type_url=type_url, first=False) is False
        assert subscription.covers("anything")


def test_sotw_an_empty_first_request_of_another_type_is_nothing() -> None:
    subscription = Subscription()
    assert subscription.replace([], type_url=ENDPOINT_TYPE_URL, first=True) is False
    assert not subscription.covers("anything")


def test_sotw_an_empty_later_request_is_nothing_unless_the_legacy_wildcard_lasts() -> None:
    subscription = Subscription()
    assert subscription.replace(["a"], type_url=LISTENER_TYPE_URL, first=True) is True
    assert subscription.replace([], type_url=LISTENER_TYPE_URL, first=False) is False
    assert not subscription.covers("a")


def test_sotw_naming_resources_ends_the_legacy_wildcard() -> None:
    subscription = Subscription()
    subscription.replace([], type_url=CLUSTER_TYPE_URL, first=True)
    assert subscription.replace(["a"], type_url=CLUSTER_TYPE_URL, first=False) is True
    assert subscription.covers("a") and not subscription.covers("b")
    # Ended for good: an empty list now means nothing.
    subscription.replace([], type_url=CLUSTER_TYPE_URL, first=False)
    assert not subscription.covers("a")
    assert repr(subscription) == "Subscription(wildcard=False, names=[])"


def test_sotw_explicit_wildcard_with_names() -> None:
    subscription = Subscription()
    assert subscription.replace([WILDCARD, "b", "a"], type_url=CLUSTER_TYPE_URL, first=True) is True
    assert subscription.covers("zzz")
    assert repr(subscription) == "Subscription(wildcard=True, names=['a', 'b'])"
    # The same request again: nothing new.
    assert subscription.replace([WILDCARD, "a", "b"], type_url=CLUSTER_TYPE_URL, first=False) is False
    # Dropping the wildcard keeps the names only; that subscribes nothing new.
    assert subscription.replace(["a"], type_url=CLUSTER_TYPE_URL, first=False) is False
    assert subscription.covers("a") and not subscription.covers("b")
    # The explicit wildcard back: newly subscribed, though no name is new.
    assert subscription.replace([WILDCARD], type_url=CLUSTER_TYPE_URL, first=False) is True


def test_sotw_an_explicit_wildcard_is_not_the_legacy_one() -> None:
    subscription = Subscription()
    subscription.replace([WILDCARD], type_url=LISTENER_TYPE_URL, first=True)
    # After an explicit `*`, an empty list means nothing (the legacy wildcard never started).
    assert subscription.replace([], type_url=LISTENER_TYPE_URL, first=False) is False
    assert not subscription.covers("a")


def test_sotw_a_newly_named_resource_must_be_answered_a_dropped_one_need_not() -> None:
    subscription = Subscription()
    subscription.replace(["a", "b"], type_url=ENDPOINT_TYPE_URL, first=True)
    assert subscription.replace(["a"], type_url=ENDPOINT_TYPE_URL, first=False) is False
    assert subscription.replace(["a", "c"], type_url=ENDPOINT_TYPE_URL, first=False) is True


def test_delta_subscribing_nothing_first_is_the_legacy_wildcard_for_listeners_and_clusters_only() -> None:
    legacy = Subscription()
    legacy.start_delta(type_url=LISTENER_TYPE_URL, subscribe=[])
    assert legacy.covers("x")
    other = Subscription()
    other.start_delta(type_url=ENDPOINT_TYPE_URL, subscribe=[])
    assert not other.covers("x")
    named = Subscription()
    named.start_delta(type_url=CLUSTER_TYPE_URL, subscribe=iter(["a"]))
    assert not named.covers("x")


def test_delta_explicit_names_end_the_legacy_wildcard_and_are_answered() -> None:
    subscription = Subscription()
    subscription.start_delta(type_url=CLUSTER_TYPE_URL, subscribe=[])
    assert subscription.subscribe(iter(["a", "b"])) == ["a", "b"]
    assert subscription.covers("a") and not subscription.covers("other")


def test_delta_the_wildcard_is_answered_only_when_new() -> None:
    subscription = Subscription()
    assert subscription.subscribe([WILDCARD, "a"]) == [WILDCARD, "a"]
    assert subscription.covers("other")
    # Already wildcard: only the explicit names are answered (again: Delta re-sends a re-subscribed name).
    assert subscription.subscribe([WILDCARD, "a"]) == ["a"]
    assert subscription.subscribe([WILDCARD]) == []


def test_delta_an_explicit_wildcard_replaces_the_legacy_one() -> None:
    subscription = Subscription()
    subscription.start_delta(type_url=LISTENER_TYPE_URL, subscribe=[])
    assert subscription.subscribe([WILDCARD]) == []  # already everything: nothing new to send
    # No longer legacy: naming a resource now keeps the wildcard.
    assert subscription.subscribe(["a"]) == ["a"]
    assert subscription.covers("other")


def test_delta_subscribing_to_the_legacy_wildcard_with_only_a_wildcard_keeps_it() -> None:
    subscription = Subscription()
    subscription.start_delta(type_url=LISTENER_TYPE_URL, subscribe=[])
    assert subscription.subscribe([]) == []
    assert subscription.covers("other")


def test_delta_unsubscribe() -> None:
    subscription = Subscription()
    subscription.subscribe([WILDCARD, "a", "b"])
    subscription.unsubscribe(iter(["a", "never-subscribed"]))
    assert subscription.covers("a")  # still covered by the wildcard
    subscription.unsubscribe([WILDCARD])
    assert not subscription.covers("a") and subscription.covers("b")
    assert repr(subscription) == "Subscription(wildcard=False, names=['b'])"


def test_delta_unsubscribing_the_wildcard_ends_the_legacy_wildcard_for_good() -> None:
    subscription = Subscription()
    subscription.start_delta(type_url=CLUSTER_TYPE_URL, subscribe=[])
    subscription.unsubscribe([WILDCARD])
    assert not subscription.covers("x")
    # Naming a resource afterwards subscribes to it alone.
    assert subscription.subscribe(["a"]) == ["a"]
    assert not subscription.covers("x")


_NAME_LISTS = st.lists(st.sampled_from(["a", "b", WILDCARD]), max_size=4)


@given(history=st.lists(_NAME_LISTS, min_size=1, max_size=4), request=_NAME_LISTS)
def test_sotw_unchanged_by_agrees_with_replace(history: list[list[str]], request: list[str]) -> None:
    """What the reader takes for a plain ACK (`unchanged_by`) must be exactly a request that `replace` keeps as is:
    otherwise an ACK that changed the subscription would not be answered."""
    subscription = Subscription()
    for index, names in enumerate(history):
        subscription.replace(names, type_url=LISTENER_TYPE_URL, first=index == 0)
    before = (subscription.wildcard, subscription.legacy_wildcard, subscription.names)
    unchanged = subscription.unchanged_by(request)
    newly = subscription.replace(request, type_url=LISTENER_TYPE_URL, first=False)
    after = (subscription.wildcard, subscription.legacy_wildcard, subscription.names)
    assert unchanged == (before == after and not newly)
