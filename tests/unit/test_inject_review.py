"""`review_response` (the webhook's answer) on reviews with any part replaced by any JSON value: always an
AdmissionReview answer with the request's uid when it has a usable one, never an exception (which the server
would turn into a dropped connection, and the API server into a refused pod under failurePolicy Fail)."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import jsonpatch
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.inject.mutation import inject_pod
from egress_xds.inject.review import review_response
from egress_xds.inject.settings import InjectSettings
from tests.support.pod_strategies import pods
from tests.support.webhook import admission_review

SETTINGS = InjectSettings()
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.floats(allow_nan=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=8,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += paths(child, (*prefix, index))
    return found


@given(pods(), st.data())
def test_any_damaged_review_gets_an_answer(pod: dict[str, Any], data: st.DataObject) -> None:
    review = admission_review({"apiVersion": "v1", "kind": "Pod", **pod}, "shop")
    uid = review["request"]["uid"]
    in_pod = [("request", "object", *path) for path in paths(review["request"]["object"])]
    where = data.draw(st.sampled_from(in_pod[1:]) | st.sampled_from(paths(review)[1:]))  # mostly inside the pod
    junk = data.draw(JUNK)
    target = review
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = junk
    outcome = review_response(copy.deepcopy(review), SETTINGS, "egress-xds")
    answer = outcome.review
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert isinstance(response["allowed"], bool)
    if where not in {("request",), ("request", "uid")}:
        assert response["uid"] == uid
    if "patch" in response:  # still a patch that applies to what was sent
        operations = json.loads(base64.b64decode(response["patch"]))
        jsonpatch.apply_patch(copy.deepcopy(review["request"]["object"]), operations)


@given(pods())
def test_the_patch_of_an_intact_review_is_the_mutation(pod: dict[str, Any]) -> None:
    obj = {"apiVersion": "v1", "kind": "Pod", **pod}
    response = review_response(admission_review(obj, "shop"), SETTINGS, "egress-xds").review["response"]
    expected = inject_pod(obj, SETTINGS).pod
    result = obj
    if "patch" in response:
        result = jsonpatch.apply_patch(copy.deepcopy(obj), json.loads(base64.b64decode(response["patch"])))
    assert result == expected
