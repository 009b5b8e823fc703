#!/usr/bin/perl
# Launcher for the agent under systemd (systemd/pgha.service): opens a datagram socket connected
# to $NOTIFY_SOCKET, leaves it open across exec as $PGHA_NOTIFY_FD, and replaces itself with the
# command given (exec: the same PID, so the agent stays the unit's main process).
#
#   notify-socket.pl /opt/pgha/node_modules/.bin/node /opt/pgha/bin/pgha.js --config FILE
#
# Why: the agent's READY=1 and WATCHDOG=1 must come from the main process so that the unit can use
# NotifyAccess=main (any other process of the unit, PostgreSQL's backends included, is then
# ignored by systemd). The kernel stamps each datagram with the PID of the process that sends it,
# and Node has no unix datagram sockets: with this descriptor the agent sends by write(2) from its
# own process instead of running systemd-notify as a child. Perl, because perl-base is Essential
# on Debian (always installed) and has Socket; nothing but core modules is used.
use strict;
use warnings;
use Fcntl qw(F_GETFD F_SETFD FD_CLOEXEC F_GETFL F_SETFL O_NONBLOCK);
use Socket qw(AF_UNIX SOCK_DGRAM pack_sockaddr_un);

die "usage: notify-socket.pl COMMAND [ARG...]\n" unless @ARGV;
my $sock;
my $path = $ENV{NOTIFY_SOCKET} // '';
if ($path ne '') {
  (my $addr = $path) =~ s/^@/\0/;    # an abstract socket (sd_notify(3))
  socket($sock, AF_UNIX, SOCK_DGRAM, 0) or die "notify-socket.pl: socket: $!\n";
  connect($sock, pack_sockaddr_un($addr)) or die "notify-socket.pl: connect $path: $!\n";
  # Kept across exec (Perl sets close-on-exec on it); non-blocking: a full queue fails the write
  # instead of stopping the agent.
  fcntl($sock, F_SETFD, fcntl($sock, F_GETFD, 0) & ~FD_CLOEXEC) or die "notify-socket.pl: fcntl: $!\n";
  fcntl($sock, F_SETFL, fcntl($sock, F_GETFL, 0) | O_NONBLOCK) or die "notify-socket.pl: fcntl: $!\n";
  $ENV{PGHA_NOTIFY_FD} = fileno($sock);
}
exec { $ARGV[0] } @ARGV or die "notify-socket.pl: exec $ARGV[0]: $!\n";
