#!/usr/bin/perl
# SPDX-License-Identifier: BSD-3-Clause
#
# bench/report.pl WORKDIR OUTDIR: turn bench/run's samples (WORKDIR/raw.csv,
# memory.csv, meta.txt) into OUTDIR/results.md, results.csv and the
# gnuplot input for results.png (chart.dat, chart.gp).  Medians over
# rounds; ratios against nbdkit's file plugin; the targets of issue 8.

use strict;
use warnings;

my ($work, $out) = @ARGV;
die "usage: report.pl WORKDIR OUTDIR\n" unless defined $out;

# ------------------------------------------------------------ input

my (%meta, @notes);
open my $mf, '<', "$work/meta.txt" or die "$work/meta.txt: $!\n";
while (<$mf>) {
    chomp;
    my ($k, $v) = split /\t/, $_, 2;
    next unless defined $v;
    if ($k eq 'note') { push @notes, $v } else { $meta{$k} = $v }
}
close $mf;

# samples{group}{workload}{server} = [ {iops, mbs, p50, p99, foreign, ...} ]
my (%s, @order_wl, %seen_wl, @order_srv, %seen_srv);
open my $rf, '<', "$work/raw.csv" or die "$work/raw.csv: $!\n";
my $hdr = <$rf>;
chomp $hdr;
my @cols = split /,/, $hdr;
while (<$rf>) {
    chomp;
    my @f = split /,/, $_, -1;
    my %r;
    @r{@cols} = @f;
    push @{ $s{ $r{group} }{ $r{workload} }{ $r{server} } }, \%r;
    push @order_wl, "$r{group}/$r{workload}" unless $seen_wl{"$r{group}/$r{workload}"}++;
    push @order_srv, "$r{group}/$r{server}" unless $seen_srv{"$r{group}/$r{server}"}++;
}
close $rf;

my @mem;
if (open my $mm, '<', "$work/memory.csv") {
    <$mm>;
    while (<$mm>) {
        chomp;
        my %r;
        @r{qw(cache cache_bytes connections vmhwm_kib vmrss_kib limit_kib)} = split /,/;
        push @mem, \%r;
    }
    close $mm;
}

# ------------------------------------------------------------ names

my %wl_label = (
    rr1     => '4 KiB random read QD1',
    rr32    => '4 KiB random read QD32',
    rr32x4  => '4 KiB random read QD32, 4 connections',
    rw32    => '4 KiB random write QD32',
    sr1m    => '1 MiB sequential read QD8',
    sw1m    => '1 MiB sequential write QD8',
    mix32   => '70/30 random read/write QD32',
    c1      => '1 connection',
    c4      => '4 connections',
    c16     => '16 connections',
    c64     => '64 connections',
    szrr32  => '4 KiB random read QD32, first GiB',
    szrw32  => '4 KiB random write QD32, first GiB',
    slrr32  => '4 KiB random read QD32, 64 MiB hot set',
    slmix32 => '70/30 random read/write QD32, 64 MiB hot set',
    nbdcopy1m => 'nbdcopy to null:, 1 MiB requests',
);
my %wl_short = (
    rr1 => '4k randread QD1', rr32 => '4k randread QD32', rr32x4 => '4k randread QD32 x4 conn',
    rw32 => '4k randwrite QD32', sr1m => '1M seq read QD8', sw1m => '1M seq write QD8',
    mix32 => '4k 70/30 QD32',
);
my %srv_label = (
    'lo-async'      => 'nbd-loopback async',
    'lo-sync'       => 'nbd-loopback sync',
    'plugin'        => 'plugin (nbdkit)',
    'nbdkit-file'   => 'nbdkit file',
    'nbdkit-cache'  => 'nbdkit file+cache',
    'qemu-nbd'      => 'qemu-nbd',
    'qemu-nbd10'    => 'qemu-nbd 10',
    'nbd-server'    => 'nbd-server',
    'nbdkit-memory' => 'nbdkit memory',
    'null'          => 'nbdkit null (ceiling)',
    'slow-lo'           => 'nbd-loopback async',
    'slow-plugin'       => 'plugin (nbdkit)',
    'slow-nbdkit-file'  => 'nbdkit file',
    'slow-nbdkit-cache' => 'nbdkit file+cache',
);
my %mbs_unit = map { $_ => 1 } qw(sr1m sw1m nbdcopy1m);
my %target = (rr32 => 1.25, rw32 => 1.25, mix32 => 1.25);

sub lab { $srv_label{ $_[0] } // $_[0] }
sub wlab { $wl_label{ $_[0] } // $_[0] }

# ------------------------------------------------------------ numbers

sub median {
    my @v = sort { $a <=> $b } grep { defined && $_ ne '' } @_;
    return undef unless @v;
    my $n = @v;
    return $n % 2 ? $v[ ($n - 1) / 2 ] : ($v[ $n / 2 - 1 ] + $v[ $n / 2 ]) / 2;
}

# med(group, workload, server, field)
sub med {
    my ($g, $w, $id, $f) = @_;
    my $l = $s{$g}{$w}{$id} or return undef;
    return median(map { $_->{$f} } @$l);
}

# the value a workload is judged by: MB/s for 1 MiB, IOPS otherwise
sub val {
    my ($g, $w, $id) = @_;
    return med($g, $w, $id, $mbs_unit{$w} ? 'mbs' : 'iops');
}

sub fmt {
    my ($w, $v) = @_;
    return 'n/a' unless defined $v;
    return sprintf('%.0f MB/s', $v) if $mbs_unit{$w};
    return sprintf('%.1fk', $v / 1000) if $v >= 1000;
    return sprintf('%.0f', $v);
}

sub ratio {
    my ($a, $b) = @_;
    return undef unless defined $a && defined $b && $b > 0;
    return $a / $b;
}
sub fr { defined $_[0] ? sprintf('%.2f×', $_[0]) : 'n/a' }
sub yes { !defined $_[0] ? 'n/a' : $_[0] ? '**yes**' : 'no' }

sub wls { my $g = shift; map { (split m{/}, $_, 2)[1] } grep { m{^\Q$g\E/} } @order_wl }
sub srvs {
    my ($g, @pref) = @_;
    my %have = map { (split m{/}, $_, 2)[1] => 1 } grep { m{^\Q$g\E/} } @order_srv;
    my @o = grep { $have{$_} } @pref;
    my %in = map { $_ => 1 } @o;
    push @o, grep { !$in{$_} } map { (split m{/}, $_, 2)[1] } grep { m{^\Q$g\E/} } @order_srv;
    return @o;
}

sub foreign_stats {
    my $g = shift;
    my @f;
    for my $w (keys %{ $s{$g} || {} }) {
        for my $id (keys %{ $s{$g}{$w} }) {
            push @f, map { $_->{foreign_cores} } @{ $s{$g}{$w}{$id} };
        }
    }
    return '' unless @f;
    my @sorted = sort { $a <=> $b } @f;
    return sprintf('%d samples; CPU used by other processes during a sample: median %.2f, max %.2f cores',
                   scalar @f, median(@f), $sorted[-1]);
}

# ------------------------------------------------------------ report

my @md;
my @csv = ('group,workload,workload_label,server,server_label,unit,median,ratio_vs_nbdkit_file,p50_us,p99_us,samples,foreign_cores_median');
my @targets;   # [ text, measured, holds ]

sub csvrow {
    my ($g, $w, $id, $unit, $v, $ratio, $p50, $p99, $n, $fm) = @_;
    my @f = ($g, $w, wlab($w), $id, lab($id), $unit,
             defined $v ? sprintf('%.1f', $v) : '',
             defined $ratio ? sprintf('%.3f', $ratio) : '',
             $p50 // '', $p99 // '', $n // '', defined $fm ? sprintf('%.2f', $fm) : '');
    push @csv, join(',', map { my $x = $_; $x =~ /[,"]/ ? do { $x =~ s/"/""/g; "\"$x\"" } : $x } @f);
}

my $title = 'nbd-loopback benchmark (issue 8)';
push @md, "# $title", '';
push @md, "- date: $meta{date}" if $meta{date};
push @md, "- machine: $meta{machine}" if $meta{machine};
push @md, "- load average (1, 5, 15 min): $meta{load_start} at the start, $meta{load_end} at the end"
    if $meta{load_start};
push @md, "- nbd-loopback commit: $meta{commit}" if $meta{commit};
push @md, "- tools: $meta{versions}" if $meta{versions};
push @md, "- run: $meta{mode}; took $meta{duration} s; $meta{retries} samples retaken because other processes used the CPU"
    if $meta{mode};
push @md, "- reproduce: `$meta{reproduce}`" if $meta{reproduce};
push @md, '', 'Same random-filled 1 GiB file in /dev/shm for every server, Unix sockets, fio `ioengine=nbd`, '
    . 'medians of interleaved rounds.  IOPS (k = thousands) or MB/s (10^6 bytes/s).  Ratios are against '
    . "nbdkit's file plugin in the same run.", '';

# --- main comparison
my @main_pref = qw(lo-async lo-sync plugin nbdkit-file nbdkit-cache qemu-nbd qemu-nbd10 nbd-server nbdkit-memory);
my @main_wl = wls('main');
my @main_srv = srvs('main', @main_pref);
my @chart_srv;
if (@main_wl) {
    push @md, '## Main comparison', '';
    push @md, '| workload | ' . join(' | ', map { lab($_) } @main_srv) . ' | async / nbdkit file | target |';
    push @md, '|---|' . join('', map { '---:|' } @main_srv) . '---:|---:|';
    my @ahead;
    for my $w (@main_wl) {
        my $base = val('main', $w, 'nbdkit-file');
        my @cells;
        for my $id (@main_srv) {
            my $v = val('main', $w, $id);
            push @cells, fmt($w, $v);
            my $n = scalar @{ $s{main}{$w}{$id} || [] };
            csvrow('main', $w, $id, $mbs_unit{$w} ? 'MB/s' : 'IOPS', $v, ratio($v, $base),
                   med('main', $w, $id, 'p50_us'), med('main', $w, $id, 'p99_us'), $n,
                   med('main', $w, $id, 'foreign_cores'));
        }
        my $r = ratio(val('main', $w, 'lo-async'), $base);
        my $t = $target{$w} // 1.1;
        push @md, '| ' . wlab($w) . ' | ' . join(' | ', @cells) . ' | ' . fr($r) . ' | '
            . sprintf('≥ %.2f×: %s', $t, yes(defined $r ? $r >= $t : undef)) . ' |';
        push @targets, ["async ≥ ${t}× nbdkit file: " . wlab($w), fr($r), defined $r ? $r >= $t : undef];
        my $lo = val('main', $w, 'lo-async');
        for my $other (qw(qemu-nbd nbd-server)) {
            my $o = val('main', $w, $other);
            push @ahead, [ $w, $other, ratio($lo, $o) ] if defined $o;
        }
    }
    push @md, '';

    # ratios
    push @md, '### Ratios against nbdkit file', '';
    push @md, '| workload | ' . join(' | ', map { lab($_) } @main_srv) . ' |';
    push @md, '|---|' . join('', map { '---:|' } @main_srv);
    open my $cd, '>', "$out/chart.dat" or die "$out/chart.dat: $!\n";
    @chart_srv = @main_srv;
    print $cd join(' ', '"workload"', map { '"' . lab($_) . '"' } @chart_srv), "\n";
    for my $w (@main_wl) {
        my $base = val('main', $w, 'nbdkit-file');
        my @r = map { ratio(val('main', $w, $_), $base) } @main_srv;
        push @md, '| ' . wlab($w) . ' | ' . join(' | ', map { fr($_) } @r) . ' |';
        print $cd join(' ', '"' . ($wl_short{$w} // $w) . '"', map { defined $_ ? sprintf('%.3f', $_) : '-' } @r), "\n";
    }
    close $cd;
    push @md, '', '![ratios against nbdkit file](results.png)', '';

    # ahead of qemu-nbd and nbd-server
    if (@ahead) {
        my @bad = grep { !defined $_->[2] || $_->[2] <= 1 } @ahead;
        my ($min) = sort { $a->[2] <=> $b->[2] } grep { defined $_->[2] } @ahead;
        push @targets, ['async ahead of qemu-nbd and nbd-server on every workload',
                        @bad ? 'behind on: ' . join(', ', map { wlab($_->[0]) . " vs $_->[1] " . fr($_->[2]) } @bad)
                             : 'lowest ' . fr($min->[2]) . ' (' . wlab($min->[0]) . " vs $min->[1])",
                        !@bad];
    }
    # plugin ≥ 1.0× nbdkit file
    my @pr = map { [ $_, ratio(val('main', $_, 'plugin'), val('main', $_, 'nbdkit-file')) ] } @main_wl;
    @pr = grep { defined $_->[1] } @pr;
    if (@pr) {
        my ($min) = sort { $a->[1] <=> $b->[1] } @pr;
        push @targets, ['plugin ≥ 1.0× nbdkit file on every workload',
                        'lowest ' . fr($min->[1]) . ' (' . wlab($min->[0]) . ')', $min->[1] >= 1.0];
    }

    # QD1 latency
    if ($s{main}{rr1}) {
        push @md, '### 4 KiB random read QD1: completion latency', '';
        push @md, '| server | IOPS | p50 µs | p99 µs |', '|---|---:|---:|---:|';
        for my $id (@main_srv) {
            next unless $s{main}{rr1}{$id};
            push @md, sprintf('| %s | %s | %s | %s |', lab($id), fmt('rr1', val('main', 'rr1', $id)),
                              med('main', 'rr1', $id, 'p50_us') // 'n/a', med('main', 'rr1', $id, 'p99_us') // 'n/a');
        }
        push @md, '';
    }
    my $fs = foreign_stats('main');
    push @md, "Conditions: $fs.", '' if $fs;
}

# --- ceiling
if ($s{ceiling}) {
    my $ceil = med('ceiling', 'nbdcopy1m', 'null', 'mbs');
    push @md, '## Protocol ceiling: nbdcopy to null:', '';
    push @md, '`nbdcopy --no-extents --request-size=1048576 URI null:` (4 connections, 64 requests in flight), '
        . 'the whole 1 GiB export three times per sample; nbdkit `null` is the ceiling.', '';
    push @md, '| server | MB/s | ratio to ceiling |', '|---|---:|---:|';
    for my $id (srvs('ceiling', qw(null lo-async plugin nbdkit-file))) {
        my $v = med('ceiling', 'nbdcopy1m', $id, 'mbs');
        push @md, sprintf('| %s | %s | %s |', lab($id), fmt('nbdcopy1m', $v), fr(ratio($v, $ceil)));
        csvrow('ceiling', 'nbdcopy1m', $id, 'MB/s', $v, ratio($v, $ceil), undef, undef,
               scalar @{ $s{ceiling}{nbdcopy1m}{$id} || [] }, med('ceiling', 'nbdcopy1m', $id, 'foreign_cores'));
    }
    for my $id (srvs('ceiling', qw(lo-async plugin))) {
        my $v = med('ceiling', 'nbdcopy1m-cold', $id, 'mbs');
        next unless defined $v;
        push @md, sprintf('| %s, cold cache (first read after start) | %s | %s |', lab($id),
                          fmt('nbdcopy1m', $v), fr(ratio($v, $ceil)));
        csvrow('ceiling', 'nbdcopy1m-cold', $id, 'MB/s', $v, ratio($v, $ceil), undef, undef, 1,
               med('ceiling', 'nbdcopy1m-cold', $id, 'foreign_cores'));
    }
    my $r = ratio(med('ceiling', 'nbdcopy1m', 'lo-async', 'mbs'), $ceil);
    push @targets, ['1 MiB sequential read ≥ 0.8× the protocol ceiling (nbdcopy)', fr($r), defined $r ? $r >= 0.8 : undef];
    my $fio = val('main', 'sr1m', 'lo-async');
    push @md, '', sprintf('fio 1 MiB sequential read QD8 (one connection) on nbd-loopback async: %s = %s of the ceiling.',
                          fmt('sr1m', $fio), fr(ratio($fio, $ceil))) if defined $fio;
    push @md, '';
}

# --- connections
if ($s{conns}) {
    my @ids = srvs('conns', qw(lo-async plugin nbdkit-file qemu-nbd nbd-server));
    push @md, '## Connections: 4 KiB random read, QD8 per connection (IOPS)', '',
        'I/Os of all connections over the wall time of the fio run, connecting included: '
        . 'fio\'s summed per-job rates overstate the total when connections start one after another.', '';
    push @md, '| connections | ' . join(' | ', map { lab($_) } @ids) . ' | async / nbdkit file | async vs 1 connection |';
    push @md, '|---|' . join('', map { '---:|' } @ids) . '---:|---:|';
    my $one = val('conns', 'c1', 'lo-async');
    for my $w (wls('conns')) {
        my $base = val('conns', $w, 'nbdkit-file');
        my @c;
        for my $id (@ids) {
            my $v = val('conns', $w, $id);
            push @c, fmt($w, $v);
            csvrow('conns', $w, $id, 'IOPS', $v, ratio($v, $base), undef, undef,
                   scalar @{ $s{conns}{$w}{$id} || [] }, med('conns', $w, $id, 'foreign_cores'));
        }
        my $lo = val('conns', $w, 'lo-async');
        push @md, '| ' . ($w =~ s/^c//r) . ' | ' . join(' | ', @c) . ' | ' . fr(ratio($lo, $base)) . ' | ' . fr(ratio($lo, $one)) . ' |';
    }
    push @md, '';
}

# --- export size
if ($s{sparse}) {
    push @md, '## Export size: the first GiB of a sparse 1 GiB and a sparse 64 GiB export (IOPS)', '';
    push @md, '| workload | nbd-loopback 1 GiB | 64 GiB | 64 / 1 | nbdkit file 1 GiB | 64 GiB | 64 / 1 |';
    push @md, '|---|---:|---:|---:|---:|---:|---:|';
    for my $w (wls('sparse')) {
        my @c;
        for my $p (['lo-1g', 'lo-64g'], ['nbdkit-file-1g', 'nbdkit-file-64g']) {
            my ($a, $b) = map { val('sparse', $w, $_) } @$p;
            push @c, fmt($w, $a), fmt($w, $b), fr(ratio($b, $a));
        }
        push @md, '| ' . wlab($w) . ' | ' . join(' | ', @c) . ' |';
        for my $id (qw(lo-1g lo-64g nbdkit-file-1g nbdkit-file-64g)) {
            next unless $s{sparse}{$w}{$id};
            csvrow('sparse', $w, $id, 'IOPS', val('sparse', $w, $id), undef, undef, undef,
                   scalar @{ $s{sparse}{$w}{$id} || [] }, med('sparse', $w, $id, 'foreign_cores'));
        }
        my $r = ratio(val('sparse', $w, 'lo-64g'), val('sparse', $w, 'lo-1g'));
        push @targets, ['cost per request does not grow with export size (64 GiB ≥ 0.9× 1 GiB): ' . wlab($w),
                        fr($r), defined $r ? $r >= 0.9 : undef];
    }
    push @md, '';
}

# --- memory
if (@mem) {
    push @md, '## Resident memory of the daemon against cache=', '';
    push @md, 'The cache filled by a sequential read of the 1 GiB file, dirtied by 4 KiB random writes from 4 '
        . 'connections, then read by 16 connections; VmHWM (peak resident) afterwards.  Limit: cache= + 16 MiB '
        . '+ 1 MiB per connection (16).', '';
    push @md, '| cache= | VmHWM MiB | VmRSS MiB | limit MiB | VmHWM / limit | holds |', '|---:|---:|---:|---:|---:|---|';
    for my $m (@mem) {
        my $ok = $m->{vmhwm_kib} <= $m->{limit_kib};
        push @md, sprintf('| %s | %.0f | %.0f | %.0f | %.2f | %s |', $m->{cache}, $m->{vmhwm_kib} / 1024,
                          $m->{vmrss_kib} / 1024, $m->{limit_kib} / 1024, $m->{vmhwm_kib} / $m->{limit_kib}, yes($ok));
        push @targets, ["resident memory ≤ cache + 16 MiB + 1 MiB/connection, cache=$m->{cache}",
                        sprintf('%.0f of %.0f MiB', $m->{vmhwm_kib} / 1024, $m->{limit_kib} / 1024), $ok];
        push @csv, join(',', 'memory', "cache=$m->{cache}", "VmHWM with cache=$m->{cache}, 16 connections",
                        'lo-async', 'nbd-loopback async', 'KiB', $m->{vmhwm_kib},
                        sprintf('%.3f', $m->{vmhwm_kib} / $m->{limit_kib}), '', '', 1, '');
    }
    push @md, '';
}

# --- slow host
if ($s{slow}) {
    my @ids = srvs('slow', qw(slow-lo slow-plugin slow-nbdkit-file slow-nbdkit-cache));
    push @md, '## Slow host: 1 ms per host request, hot set 64 MiB, cache 256 MiB', '';
    push @md, 'The file behind nbdkit\'s delay filter (`rdelay=1ms wdelay=1ms`), mounted back as a file with '
        . 'nbdfuse (direct I/O, no page cache); each server gets its own such mount and serves it.  The hot set is '
        . 'read once before each sample; writes are flushed after each sample (the flush column: median seconds).', '';
    push @md, '| workload | ' . join(' | ', map { lab($_) } @ids) . ' | async / nbdkit file | async / nbdkit file+cache |';
    push @md, '|---|' . join('', map { '---:|' } @ids) . '---:|---:|';
    for my $w (wls('slow')) {
        my $base = val('slow', $w, 'slow-nbdkit-file');
        my @c;
        for my $id (@ids) {
            my $v = val('slow', $w, $id);
            my $fl = med('slow', $w, $id, 'flush_s');
            push @c, fmt($w, $v) . (defined $fl ? sprintf(' (flush %.1f s)', $fl) : '');
            csvrow('slow', $w, $id, 'IOPS', $v, ratio($v, $base), undef, undef,
                   scalar @{ $s{slow}{$w}{$id} || [] }, med('slow', $w, $id, 'foreign_cores'));
        }
        my $lo = val('slow', $w, 'slow-lo');
        my $r = ratio($lo, $base);
        push @md, '| ' . wlab($w) . ' | ' . join(' | ', @c) . ' | ' . fr($r) . ' | '
            . fr(ratio($lo, val('slow', $w, 'slow-nbdkit-cache'))) . ' |';
        push @targets, ['slow host, hot set: async ≥ 5× nbdkit file: ' . wlab($w), fr($r), defined $r ? $r >= 5 : undef];
    }
    push @md, '';
}

# --- targets
if (@targets) {
    push @md, '## Issue 8 targets', '';
    push @md, '| target | measured | holds |', '|---|---|---|';
    push @md, map { "| $_->[0] | $_->[1] | " . yes($_->[2]) . ' |' } @targets;
    push @md, '';
}

# --- notes and commands
# The host I/O group (bench/run writes its table itself).
if (-s "$out/hostio.md") {
    open my $h, '<', "$out/hostio.md" or die "$out/hostio.md: $!\n";
    my @rows = <$h>;
    close $h;
    chomp @rows;
    push @md, '## Host I/O: cold reads, working set > cache, durable writes', '',
        'A fresh server for every sample (cold), nbd-loopback with `cache=64m` '
        . '(16 times smaller than the file), against nbdkit file (with '
        . '`--filter=fua fuamode=force` for durable writes) on the same file. '
        . 'Medians of the rounds, (min-max); CPU/request is the server\'s '
        . 'user+system time (/proc/PID/stat) over the requests served.', '',
        @rows, '';
}

push @md, '## How each server was run', '';
push @md, 'File `$W/disk.img` (random data), sockets in `$W`, a fresh directory in /dev/shm.  nbd-loopback\'s '
    . 'loopback options are order-dependent: `async,denyno` must come before `fd=` (after it they are silently '
    . 'ignored).  nbd-loopback and the plugin each serve a private copy of the file (identical at the start): they '
    . 're-validate the host file when idle and drop their cache when another process wrote to it, which the '
    . 'other servers\' write samples would do.  Servers with a cache of their own read the whole file once '
    . 'after starting; every server that can flush gets a flush after each write sample, outside the measured time.', '';
for my $k (sort { (($a =~ /^cmd\.slow/ ? 1 : 0) <=> ($b =~ /^cmd\.slow/ ? 1 : 0)) || $a cmp $b } grep { /^cmd\./ } keys %meta) {
    my $id = substr($k, 4);
    my $l = $id eq 'slow-host' ? 'slow host (per server: delay server, FUSE mount)'
          : $id =~ /^slow-/ ? 'slow host, ' . lab($id) : lab($id);
    push @md, sprintf('- %s: `%s`', $l, $meta{$k});
}
push @md, '';
for my $g (qw(ceiling conns sparse slow)) {
    my $fs = foreign_stats($g);
    push @md, "- $g: $fs" if $fs;
}
if (@notes) {
    push @md, '', '### Notes', '', map { "- $_" } @notes;
}
push @md, '';

open my $o, '>', "$out/results.md" or die "$out/results.md: $!\n";
print $o join("\n", @md);
close $o;
open my $c, '>', "$out/results.csv" or die "$out/results.csv: $!\n";
print $c join("\n", @csv), "\n";
close $c;

# ------------------------------------------------------------ chart
if (@chart_srv) {
    my $n = @chart_srv + 1;
    my $sub = join(', ', grep { defined } $meta{date}, $meta{machine});
    $sub =~ s/"/'/g;
    open my $g, '>', "$out/chart.gp" or die "$out/chart.gp: $!\n";
    print $g <<"EOF";
# generated by bench/report.pl: gnuplot chart.gp -> results.png
set terminal pngcairo size 1400,700 font "sans,10"
set output "results.png"
set title "nbd-loopback and others against nbdkit file (= 1.0), higher is better\\n{/*0.8 $sub}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "throughput / nbdkit file"
set yrange [0:*]
set grid ytics
set key outside right top vertical
set xtics rotate by -20 nomirror
set datafile missing "-"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1 dt 2 lc rgb "black"
set arrow from graph 0, first 1.25 to graph 1, first 1.25 nohead lw 1 dt 3 lc rgb "red"
set label "target 1.25" at graph 0.005, first 1.29 tc rgb "red" font ",8"
plot for [i=2:$n] "chart.dat" using i:xtic(1) title columnheader(i)
EOF
    close $g;
}
