# `provision doctor` and `status` on a balancer: each app host of its upstream, asked for the health
# path straight from here (the path the balancer's own requests take, through the app host's firewall),
# as findings (the format of doctor.sh). Read-only.
# Given: a function check_app_hosts that prints one line per app host:
#   NAME<TAB>ADDRESS:PORT<TAB>EXIT CODE OF ITS HEALTH CHECK<TAB>ITS ANSWER

finding() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"
}

total=0
answering=0
lines=$(check_app_hosts)
while IFS="$(printf '\t')" read -r name address rc answer; do
  [ -n "$name" ] || continue
  total=$((total + 1))
  if [ "$rc" = 0 ]; then
    answering=$((answering + 1))
    finding ok "app host" "$name ($address): $answer" ""
  else
    finding fail "app host" "$name ($address) does not answer: $answer" \
      "provision doctor -H $name; the balancer sends its requests to the others meanwhile"
  fi
done <<LINES
$lines
LINES
if [ "$total" -gt 0 ] && [ "$answering" -eq 0 ]; then
  finding fail upstream "none of the $total app hosts answers: every request gets a 502" \
    "provision doctor -H app (the app hosts' own findings)"
fi
