"""
The "Content Discovery" category of the OCI Distribution Spec (C{distribution-spec.md}):
"Listing Tags" (end-8a, end-8b) in every combination of C{n} and C{last}, with C{Link}
pagination (RFC 5988), and the repository catalog (C{GET /v2/_catalog}, with the same
C{n}/C{last}/C{Link} paging; not in the spec's endpoint table, but what clients such as
C{crane catalog} and C{regctl repo ls} call).  "Listing Referrers" has its own module,
C{test_spec_referrers}.

Each test runs against a real C{twistd -n ocid} on a loopback port.
"""

from __future__ import annotations

import itertools
from urllib.parse import parse_qs, urlsplit

import pytest

from .spec_client import (
    SpecClient,
    assertError,
    nextLink,
    registryFixture,
)

registry = registryFixture()

#: Tags in "ASCIIbetical" order (Go's C{sort.Strings}: byte order): digits, then upper
#: case, then underscore, then lower case.
TAGS = ["1.0", "1.10", "1.9", "A", "Z_last", "_under", "a", "a-b", "a.b", "a_b", "b", "latest"]


@pytest.fixture(scope="module")
def tagged(registry: SpecClient) -> str:
    """
    A repository with one manifest under every tag in L{TAGS}, pushed in an order that
    is not the listing order.
    """
    assert sorted(TAGS, key=lambda t: t.encode()) == TAGS, "TAGS must be in byte order"
    name = registry.repository("tags")
    image = registry.pushImage(name)
    for tag in reversed(TAGS):
        response = registry.putManifest(name, tag, image.body)
        assert response.status_code == 201
    return name


def expectedPage(
    tags: list[str], n: int | None, last: str | None
) -> tuple[list[str], bool]:
    """
    What "Listing Tags" says a request with C{n} and C{last} returns: up to C{n} tags
    after C{last} (non-inclusive) in order, and whether more follow (so a C{Link} may
    be given; never when C{n} is 0).
    """
    after = [t for t in tags if last is None or t > last]
    if n is None:
        return after, False
    return after[:n], n > 0 and len(after) > n


def test_listTags(registry: SpecClient, tagged: str) -> None:
    """
    "Listing Tags": 200 with C{{"name": <name>, "tags": [...]}}, the tags in lexical or
    "ASCIIbetical" order; no C{Link} when the whole list is returned.
    """
    response = registry.get(f"/v2/{tagged}/tags/list")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"name": tagged, "tags": TAGS}
    assert "Link" not in response.headers


_COUNTS = [None, 0, 1, 2, 5, len(TAGS) - 1, len(TAGS), len(TAGS) + 3]
_LASTS = [None, "0", TAGS[0], "B", TAGS[5], "a.b", TAGS[-2], TAGS[-1], "zzz", "~"]


@pytest.mark.parametrize(
    "n, last",
    list(itertools.product(_COUNTS, _LASTS)),
    ids=lambda value: repr(value),
)
def test_tagsPage(registry: SpecClient, tagged: str, n: int | None, last: str | None) -> None:
    """
    "Listing Tags" (end-8b), every combination of C{n} (absent, 0, small, exact, more
    than there are) and C{last} (absent, before the first, a tag, not a tag, the last
    tag, beyond the end): up to C{n} tags "beginning non-inclusively with <tagname>", in
    order; fewer than C{n} only at the end of the list or with a C{Link}; for C{n=0} an
    empty list and no C{Link}; C{last} without C{n} gives every tag after it.
    """
    params: dict[str, str] = {}
    if n is not None:
        params["n"] = str(n)
    if last is not None:
        params["last"] = last
    response = registry.get(f"/v2/{tagged}/tags/list", params=params)
    assert response.status_code == 200
    body = response.json()
    expected, more = expectedPage(TAGS, n, last)
    assert body == {"name": tagged, "tags": expected}
    link = nextLink(response)
    if n == 0 or not more:
        assert link is None
    else:
        assert link is not None
        target = urlsplit(link)
        assert target.path == f"/v2/{tagged}/tags/list"
        query = parse_qs(target.query)
        assert query["n"] == [str(n)]
        assert query["last"] == [expected[-1]]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 100])
def test_followTagLinks(registry: SpecClient, tagged: str, n: int) -> None:
    """
    "Listing Tags": following each C{Link: <...>; rel="next"} from C{?n=} visits every
    tag exactly once, in order ("clients should prefer the Link header").
    """
    seen: list[str] = []
    url: str | None = f"/v2/{tagged}/tags/list?n={n}"
    pages = 0
    while url is not None:
        response = registry.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= n
        seen.extend(page)
        url = nextLink(response)
        pages += 1
        if url is not None:
            assert len(page) == n
        assert pages <= len(TAGS) + 1
    assert seen == TAGS


def test_repositoryWithoutTags(registry: SpecClient) -> None:
    """
    "Listing Tags": "The list of tags MAY be empty if there are no tags on the
    repository"; a repository holding only a blob is found: 200 and no tags.
    """
    name = registry.repository()
    registry.pushBlob(name, b"only a blob")
    response = registry.get(f"/v2/{name}/tags/list")
    assert response.status_code == 200
    assert response.json() == {"name": name, "tags": []}
    paged = registry.get(f"/v2/{name}/tags/list", params={"n": "10"})
    assert paged.json() == {"name": name, "tags": []}
    assert "Link" not in paged.headers


def test_repositoryWithOnlyUntaggedManifests(registry: SpecClient) -> None:
    """
    "Listing Tags": manifests pushed by digest have no tags.
    """
    name = registry.repository()
    registry.pushImage(name)
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == []


def test_tagsOfNeverExistingRepository(registry: SpecClient) -> None:
    """
    "Listing Tags" ("Assuming a repository is found"), end-8a's failure: a repository
    that never existed is 404 C{NAME_UNKNOWN}.
    """
    name = registry.repository("never")
    assertError(registry.get(f"/v2/{name}/tags/list"), 404, "NAME_UNKNOWN")
    assertError(registry.get(f"/v2/{name}/tags/list", params={"n": "1"}), 404, "NAME_UNKNOWN")


def test_tagsOfInvalidName(registry: SpecClient) -> None:
    """
    "Pulling manifests": C{<name>} MUST match the name grammar "throughout this
    document"; a name that does not is 400 C{NAME_INVALID}.
    """
    assertError(registry.get("/v2/Invalid_Name/tags/list"), 400, "NAME_INVALID")


@pytest.mark.parametrize("n", ["-1", "abc", "1.5", "0x10"])
def test_invalidCount(registry: SpecClient, tagged: str, n: str) -> None:
    """
    "Listing Tags": C{n} "is an integer specifying the number of tags requested"; a
    value that is not a non-negative integer is a bad request (400).
    """
    response = registry.get(f"/v2/{tagged}/tags/list", params={"n": n})
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_tagListFollowsTagChanges(registry: SpecClient) -> None:
    """
    "Listing Tags" reflects tags added and deleted ("Deleting tags") at once.
    """
    name = registry.repository()
    registry.pushImage(name, tag="b")
    registry.pushImage(name, tag="a")
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["a", "b"]
    assert registry.delete(f"/v2/{name}/manifests/a").status_code == 202
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["b"]
    registry.pushImage(name, tag="c")
    assert registry.get(f"/v2/{name}/tags/list").json()["tags"] == ["b", "c"]


# The catalog.


@pytest.fixture(scope="module")
def catalogNames(registry: SpecClient) -> list[str]:
    """
    Five repositories pushed for the catalog tests (others' repositories are there too).
    """
    names = [registry.repository("catalog") for _ in range(5)]
    for name in names:
        registry.pushBlob(name, name.encode())
    return sorted(names)


def _catalog(registry: SpecClient, **params: str) -> list[str]:
    response = registry.get("/v2/_catalog", params=params)
    assert response.status_code == 200
    repositories = response.json()["repositories"]
    assert isinstance(repositories, list)
    return repositories


def test_catalog(registry: SpecClient, catalogNames: list[str]) -> None:
    """
    The catalog lists every repository, in lexical order.
    """
    everything = _catalog(registry)
    assert everything == sorted(everything)
    assert set(catalogNames) <= set(everything)


def test_catalogPages(registry: SpecClient, catalogNames: list[str]) -> None:
    """
    The catalog pages like "Listing Tags": C{n}, C{last} (non-inclusive), a C{Link}
    while more follow, none for C{n=0}; following the links visits every repository
    once, in order.
    """
    everything = _catalog(registry)
    assert _catalog(registry, n="0") == []
    assert "Link" not in registry.get("/v2/_catalog", params={"n": "0"}).headers
    assert _catalog(registry, last="~") == []
    assert _catalog(registry, n="3", last="~") == []
    assert _catalog(registry, last=catalogNames[1]) == [
        r for r in everything if r > catalogNames[1]
    ]
    assert _catalog(registry, n="2", last=catalogNames[0]) == [
        r for r in everything if r > catalogNames[0]
    ][:2]
    seen: list[str] = []
    url: str | None = "/v2/_catalog?n=2"
    while url is not None:
        response = registry.get(url)
        page = response.json()["repositories"]
        assert len(page) <= 2
        seen.extend(page)
        url = nextLink(response)
        if url is not None:
            assert len(page) == 2
            assert urlsplit(url).path == "/v2/_catalog"
    assert seen == everything
    last = registry.get("/v2/_catalog", params={"n": str(len(everything))})
    assert last.json()["repositories"] == everything
    assert "Link" not in last.headers
