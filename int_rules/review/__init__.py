"""The clinical safety review pack: what a DCB0129 reviewer needs to approve the rules.

* :mod:`.docs`: ``int-rules docs``, the ruleset reference in plain English (``docs/reference``);
* :mod:`.reference`: its layout for line-by-line review (one block per rule) and the printable
  HTML pack per ruleset with a sign-off box;
* :mod:`.approvals`: approval records, content hashes and the status every result reports;
* :mod:`.signoff`: ``int-rules approve`` and the lint checks that hold the records;
* :mod:`.canonical`: the canonical form of conditions (rewrites versus changes in the diff);
* :mod:`.lint`: ``int-rules lint``, static verification with located findings and examples;
* :mod:`.analysis`: the decision analysis behind lint (overlaps, gaps, rules that never fire);
* :mod:`.diff`: ``int-rules diff OLD NEW``, a reviewer's summary then rule-level changes;
* :mod:`.hazards`: the hazard log (``docs/safety/hazard-log.yaml``) and its checks;
* :mod:`.safety_case`: ``int-rules safety-case``, the generated safety case summary;
* :mod:`.cli`: the five subcommands.

See ``docs/review.md``.
"""
