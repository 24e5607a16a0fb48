"""The ads a catalogue query draws from: a run's advertisers (their ad texts, categories and
values per click as truthful per-click bids), rebuilt from the run's config and seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agents import Ad

from ..config import ExperimentConfig
from ..seeding import RunSeeds
from ..world import make_world
from .errors import EdgeError, UnknownAdError


@dataclass(frozen=True)
class Catalogue:
    """Ads in a fixed order; ``query`` filters them by category.

    Attributes:
        ads: the ads (ids unique).
    """

    ads: tuple[Ad, ...]
    _by_category: dict[str, tuple[Ad, ...]] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Ad] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [a.ad_id for a in self.ads]
        if len(set(ids)) != len(ids):
            raise EdgeError("catalogue ad ids must be unique")
        groups: dict[str, list[Ad]] = {}
        for ad in self.ads:
            groups.setdefault(ad.category, []).append(ad)
        object.__setattr__(self, "_by_category", {c: tuple(a) for c, a in groups.items()})
        object.__setattr__(self, "_by_id", {a.ad_id: a for a in self.ads})

    @property
    def categories(self) -> Sequence[str]:
        """The categories that have ads, in catalogue order."""
        return list(self._by_category)

    def query(self, category: str | None, limit: int) -> tuple[Ad, ...]:
        """The first ``limit`` ads (>= 1) of ``category`` (None: of any category); empty when
        the category has no ads."""
        if limit < 1:
            raise EdgeError(f"limit must be >= 1, got {limit}")
        ads = self.ads if category is None else self._by_category.get(category, ())
        return ads[:limit]

    def pick(self, ad_ids: Sequence[str]) -> list[Ad]:
        """The ads of ``ad_ids``, in that order.

        Raises:
            UnknownAdError: an id the catalogue does not hold (the first such, its index).
        """
        by_id = self._by_id
        try:
            return [by_id[i] for i in ad_ids]
        except KeyError:
            index = next(k for k, i in enumerate(ad_ids) if i not in by_id)
            raise UnknownAdError(
                f"{ad_ids[index][:80]!r} is not an ad of this node's catalogue "
                f"({len(self.ads)} ads)",
                index,
            ) from None


def catalogue_from_config(cfg: ExperimentConfig) -> Catalogue:
    """The run's advertisers as a catalogue: ad id ``str(i)`` (the market's id of advertiser
    ``i``), its ad text, its category's name and its value per click as the bid."""
    world = make_world(cfg, RunSeeds(cfg.seed))
    if world.texts is None:
        raise EdgeError("the run's world has no ad texts (agents.scorer must be 'lm')")
    names = world.texts.categories
    return Catalogue(
        tuple(
            Ad(str(i), text, float(value), names[int(cat)])
            for i, (text, value, cat) in enumerate(
                zip(world.texts.ads, world.values, world.ad_category, strict=True)
            )
        )
    )
