"""Ansible's names for the connection settings, and its variables provision does not use: which it
refuses (their value would change how to connect) and which it ignores. known_settings() reads them."""

# Other names Ansible gives the connection settings (the canonical name wins when both are set).
ALIASES = {
    "ansible_ssh_host": "ansible_host", "ansible_ssh_port": "ansible_port", "ansible_ssh_user": "ansible_user",
    "ansible_private_key_file": "ansible_ssh_private_key_file", "ansible_sudo": "ansible_become",
    "ansible_become_pass": "ansible_become_password", "ansible_sudo_pass": "ansible_become_password",
}
# Ansible's connection variables that provision does not use. A value that would change how to connect
# is refused (never dropped: the host would be reached another way than the inventory says).
# name: (the values that change nothing, why any other is refused)
_NO_PASSWORD = "SSH password logins are not supported; use a key (ansible_ssh_private_key_file)"
_HOST_KEYS = ("provision always checks host keys (an unknown key is accepted on first contact and remembered; "
              "a changed key is refused)")
_TRUE = {"true", "yes", "on", "1"}
REFUSED_UNLESS = {
    "ansible_connection": ({"ssh", "smart", "paramiko", "paramiko_ssh"}, "provision always connects over SSH"),
    "ansible_become_method": ({"sudo"}, "provision becomes root with sudo"),
    "ansible_become_user": ({"root"}, "provision becomes root"),
    "ansible_become_exe": ({"sudo"}, "provision runs sudo itself"),
    "ansible_become_flags": ({"-H -S -n"}, "provision runs sudo with its own flags"),
    "ansible_password": (set(), _NO_PASSWORD),
    "ansible_ssh_pass": (set(), _NO_PASSWORD),
    "ansible_ssh_executable": ({"ssh"}, "provision connects with its own SSH client, not an ssh program"),
    "ansible_host_key_checking": (_TRUE, _HOST_KEYS),
    "ansible_ssh_host_key_checking": (_TRUE, _HOST_KEYS),
}
# Ansible's variables that do not change where or as whom provision connects: accepted and ignored.
ANSIBLE_IGNORED = {f"ansible_{name}" for name in (
    "python_interpreter shell_type shell_executable sftp_extra_args scp_extra_args ssh_pipelining pipelining "
    "timeout ssh_timeout ssh_retries remote_tmp group_priority become_ask_pass ssh_transfer_method").split()}
