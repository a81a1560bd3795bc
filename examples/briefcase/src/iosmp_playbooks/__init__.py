"""ios_mp Playbooks: a Briefcase (Toga) example app that runs ansible-core playbooks
in-process with ios_mp.ansible.run_playbook (see docs/app-guide.md)."""
