#!/usr/bin/perl
# The fencing process: a small watchdog outside the agent's event loop. A frozen agent (SIGSTOP,
# a stuck event loop, a VM pause) cannot run its own fence timer; this process can. The agent
# (src/agent/fencer-client.ts) sends it, on stdin, one JSON line per change:
#   {"armed":true,"deadline":<ms on CLOCK_MONOTONIC>}   or   {"armed":false}
# When an armed deadline passes without a newer one, it SIGKILLs PostgreSQL's backends and then
# the postmaster, so no further commit is acknowledged (only a process that is our postmaster by
# name, state and working directory: see our_postmaster). If the agent dies (stdin closes), the
# last deadline still holds: the lease will expire, so PostgreSQL must stop by then too; then it
# exits. It reports on stdout, one JSON line each: {"event":"not our postmaster","pid":N} and
# {"event":"fenced","pid":N|null,"at":"<UTC time>"}.
#
#   perl pgha-fencer.pl DATA_DIR
#
# Perl, not a second Node: it only waits on a deadline and kills processes, and perl-base is
# Essential on Debian (always installed), so it costs a few MB instead of a Node runtime's 47.
# Only modules of perl-base are used (no Time::HiRes: the monotonic clock is read by syscall).
use strict;
use warnings;
use Cwd qw(realpath);
use Errno qw(EINTR EAGAIN EACCES);
use POSIX qw(strftime);

my $data_dir = $ARGV[0];
if (!defined $data_dir) { print STDERR "usage: pgha-fencer.pl DATA_DIR\n"; exit 2; }
$| = 1;                  # each report line leaves at once
$SIG{PIPE} = 'IGNORE';   # the agent gone: reports fail, fencing does not
$SIG{TERM} = sub { exit 0 };

# clock_gettime(CLOCK_MONOTONIC) by its system call number: the same clock as the agent's
# process.hrtime(). Both architectures the agent's Node runs on have a 64-bit struct timespec.
my %SYS_CLOCK_GETTIME = (x86_64 => 228, aarch64 => 113);
my $machine = (POSIX::uname())[4];
my $sys_clock_gettime = $SYS_CLOCK_GETTIME{$machine} // die "pgha-fencer.pl: unsupported architecture $machine\n";
sub monotonic_ms {
  my $ts = "\0" x 16;
  syscall($sys_clock_gettime, 1, $ts) == 0 or die "pgha-fencer.pl: clock_gettime: $!\n";   # 1 = CLOCK_MONOTONIC
  my ($s, $ns) = unpack('q q', $ts);
  return $s * 1000 + $ns / 1e6;
}
monotonic_ms();   # fail at start, not at the deadline

sub read_file {
  my ($path) = @_;
  open(my $fh, '<', $path) or return undef;
  local $/;
  my $text = <$fh>;
  close $fh;
  return $text;
}

sub postmaster_pid {
  my $text = read_file("$data_dir/postmaster.pid") // return undef;
  my ($first) = split /\n/, $text;
  return defined $first && $first =~ /^\s*([0-9]+)\s*$/ && $1 > 0 ? 0 + $1 : undef;
}

# (name, state) from /proc/<pid>/stat; the name is between the first '(' and the last ')'.
sub proc_stat {
  my ($pid) = @_;
  my $stat = read_file("/proc/$pid/stat") // return ();
  my $open = index($stat, '(');
  my $close = rindex($stat, ')');
  return () if $open < 0 || $close < $open;
  return (substr($stat, $open + 1, $close - $open - 1), substr($stat, $close + 2, 1));
}

# Is $pid our postmaster? The same check as the agent's (src/postgres/datadir.ts livePostmaster):
# a live, non-zombie process named postgres (or postmaster) whose working directory is our data
# directory. After a crash the PID in a stale postmaster.pid may belong to any other program by
# now, or to another cluster's postgres: those are never signalled. When /proc hides the cwd (it
# does not for the same user), the name check stands.
sub our_postmaster {
  my ($pid) = @_;
  my ($comm, $state) = proc_stat($pid);
  return 0 if !defined $comm || ($comm ne 'postgres' && $comm ne 'postmaster') || $state eq 'Z';
  my $cwd = readlink("/proc/$pid/cwd");
  return $! == EACCES ? 1 : 0 if !defined $cwd;
  my $real = realpath($data_dir);
  return defined $real && $cwd eq $real ? 1 : 0;
}

sub is_postgres {
  my ($comm) = proc_stat($_[0]);
  return defined $comm && $comm eq 'postgres';
}

sub fence {
  my $found = postmaster_pid();
  my $pid = defined $found && our_postmaster($found) ? $found : undef;
  print qq({"event":"not our postmaster","pid":$found}\n) if defined $found && !defined $pid;
  if (defined $pid) {
    # Freeze the postmaster first so it forks no backend between reading its children and the
    # kill; then the backends (one outliving its postmaster could still acknowledge a commit),
    # then the postmaster itself (SIGKILL ends a stopped process too).
    kill 'STOP', $pid;
    my @children = grep { /^[0-9]+$/ } split /\s+/, (read_file("/proc/$pid/task/$pid/children") // '');
    kill 'KILL', $_ for ((grep { is_postgres($_) } @children), $pid);
  }
  printf qq({"event":"fenced","pid":%s,"at":"%s"}\n), defined $pid ? $pid : 'null', strftime('%Y-%m-%dT%H:%M:%SZ', gmtime);
}

my $armed = 0;
my $deadline = 0;
my $agent_gone = 0;
my $buf = '';

# One line of the agent's; a garbled line changes nothing.
sub take {
  my ($line) = @_;
  return unless $line =~ /^\s*\{\s*"armed"\s*:\s*(true|false)\s*(?:,\s*"deadline"\s*:\s*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\s*)?\}\s*$/;
  $armed = $1 eq 'true' && defined $2 ? 1 : 0;
  $deadline = defined $2 ? 0 + $2 : 0;
}

# Sleeps in select() until the deadline or the agent's next line: no wake-ups while nothing
# changes. select() may return early (a signal); the deadline is compared with the clock again.
for (;;) {
  my $timeout;
  if ($armed) {
    my $left = $deadline - monotonic_ms();
    if ($left <= 0) {
      $armed = 0;
      fence();
      next;
    }
    $timeout = $left / 1000;
  } elsif ($agent_gone) {
    exit 0;
  }
  if ($agent_gone) {   # keep the last deadline: fence at it, then exit
    select(undef, undef, undef, $timeout);
    next;
  }
  my $rin = '';
  vec($rin, fileno(STDIN), 1) = 1;
  my $n = select(my $rout = $rin, undef, undef, $timeout);
  if ($n < 0) {
    next if $! == EINTR;
    die "pgha-fencer.pl: select: $!\n";
  }
  next if $n == 0;
  my $r = sysread(STDIN, $buf, 65536, length $buf);
  if (!defined $r) {
    next if $! == EINTR || $! == EAGAIN;
    $agent_gone = 1;
    next;
  }
  if ($r == 0) {
    $agent_gone = 1;
    next;
  }
  take($1) while $buf =~ s/^([^\n]*)\n//;
}
