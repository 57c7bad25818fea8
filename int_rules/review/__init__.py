"""The clinical safety review pack: what a DCB0129 reviewer needs to approve the rules.

* :mod:`.docs`: ``int-rules docs``, the ruleset reference in plain English (``docs/reference``);
* :mod:`.lint`: ``int-rules lint``, static verification with located findings and examples;
* :mod:`.analysis`: the decision analysis behind lint (overlaps, gaps, rules that never fire);
* :mod:`.diff`: ``int-rules diff OLD NEW``, rule-level changes for a change record;
* :mod:`.hazards`: the hazard log (``docs/safety/hazard-log.yaml``) and its checks;
* :mod:`.safety_case`: ``int-rules safety-case``, the generated safety case summary;
* :mod:`.cli`: the four subcommands.

See ``docs/review.md``.
"""
