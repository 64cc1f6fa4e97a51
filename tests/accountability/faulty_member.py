"""TEST ONLY: a committee member that signs whatever the operator proposes.

``RubberStampMember`` checks the operator's endorsement like any member (it is a member the
operator can reach) and then signs the slot root without running a single rule: the member
that rule-breaking evidence exists to slash (docs/accountability.md). It lives only in
``tests/``: nothing in ``committee/`` can turn a member into it (the signer's test faults
all pass every check first).
"""

from __future__ import annotations

from committee import threshold
from committee.endorsement import unwrap_proposal
from committee.member import Member, MemberReply
from committee.proposal import parse_proposal
from committee.signing import compute_slot_signing_root


class RubberStampMember(Member):
    """A member whose only check is the operator's signature."""

    def sign_proposal(self, data: bytes) -> MemberReply:
        endorsed, body = unwrap_proposal(data)
        head = parse_proposal(body).head
        slot_root = head.compute_slot_root()
        self._check_endorsement(head, slot_root, endorsed)
        root = compute_slot_signing_root(self.config.committee.committee_id, head.slot, slot_root)
        return MemberReply(self.index, head.slot, slot_root, root,
                           threshold.partial_sign(self.share, root), repeated=False)
