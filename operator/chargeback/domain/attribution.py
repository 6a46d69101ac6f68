"""Team attribution: static teams, a team label, OpenShift Groups, a subscription's team.

The last is the cost centre of a MaaS subscription; anything else is `unassigned`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from chargeback.api.report import Attribution

UNASSIGNED = "unassigned"
_MAX_SA_NAME = 63


def maas_service_account_name(username: str) -> str:
    """The per-user ServiceAccount name MaaS puts in the `user` label.

    Sanitised username (lowercase, runs of other characters turned into one dash) + "-" + the
    first 8 hex digits of sha1(username), e.g. tgitelma@redhat.com -> tgitelma-redhat-com-dd264a84.
    """
    digest = hashlib.sha1(username.encode(), usedforsecurity=False).hexdigest()[:8]
    sanitised = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")
    sanitised = sanitised[: _MAX_SA_NAME - len(digest) - 1].rstrip("-")
    return f"{sanitised}-{digest}" if sanitised else digest


class TeamResolver:
    """Maps a usage row's user (and labels) to a team."""

    def __init__(
        self,
        attribution: Attribution,
        groups: Mapping[str, list[str]] | None = None,
        plans: Mapping[str, str] | None = None,
    ) -> None:
        self.team_label = attribution.team_label
        self._plans = dict(plans or {})
        self._static = _members({team.name: team.users for team in attribution.teams})
        prefix = attribution.group_prefix
        selected = {
            name: users
            for name, users in (groups or {}).items()
            if attribution.openshift_groups and name.startswith(prefix)
        }
        self._groups = _members(selected)

    def team(self, user: str, labels: Mapping[str, str], plan: str = "") -> str:
        """The team of ``user``; label values come from the source's extra labels.

        Last comes the team of the plan (a MaaS subscription's cost centre), when given.
        """
        if user in self._static:
            return self._static[user]
        if self.team_label and labels.get(self.team_label):
            return labels[self.team_label]
        return self._groups.get(user) or self._plans.get(plan, UNASSIGNED)


def _members(teams: Mapping[str, list[str]]) -> dict[str, str]:
    """Label value -> team, for members given as label values or as usernames."""
    members: dict[str, str] = {}
    for team in sorted(teams):
        for user in teams[team]:
            for value in (user, maas_service_account_name(user)):
                members.setdefault(value, team)
    return members
