#!/usr/bin/perl
# The test oracle: Debian's libpalm-perl reads and writes Palm databases for the
# palm store's tests.  JSON on stdin/stdout, strings as Latin-1.
#
#   oracle.pl read FILE           -> the database as JSON
#   oracle.pl write FILE < JSON   -> a new database (kind: datebook, calendar, todo)
#   oracle.pl edit FILE < JSON    -> change records in place, as a Palm would:
#                                    {"set": {ID: {field: value}}, "delete": [ID],
#                                     "add": [record], "archive": [ID]}
#                                    (every touched record is marked dirty)
use strict;
use warnings;
use JSON::PP;
use Palm::PDB;
use Palm::Datebook;
use Palm::ToDo;

my $json = JSON::PP->new->latin1->canonical;
my ($cmd, $file) = @ARGV;
my @FIELDS = qw(day month year start_hour start_minute end_hour end_minute alarm repeat
                exceptions description note location due_day due_month due_year
                completed priority timezone);

sub out_record {
    my ($r) = @_;
    my %o = (id => $r->{id}, category => $r->{category},
             attributes => { map { $_ => 1 } grep { $r->{attributes}{$_} }
                             qw(expunged dirty deleted private archive) });
    for my $f (@FIELDS) { $o{$f} = $r->{$f} if defined $r->{$f} }
    return \%o;
}

sub in_record {
    my ($pdb, $h) = @_;
    my $r = $pdb->new_Record;
    delete $r->{alarm} unless exists $h->{alarm};
    for my $f (@FIELDS) { $r->{$f} = $h->{$f} if exists $h->{$f} }
    $r->{id} = $h->{id} if defined $h->{id};
    $r->{category} = $h->{category} // 0;
    $r->{attributes} = { %{ $h->{attributes} // {} } };
    $r->{other_flags} //= 0 if $pdb->isa('Palm::Datebook');
    $r->{repeat}{unknown} //= 0 if $r->{repeat} && %{ $r->{repeat} };
    return $r;
}

if ($cmd eq 'read') {
    my $pdb = Palm::PDB->new;
    $pdb->Load($file);
    my @cats = map { $_->{name} } @{ $pdb->{appinfo}{categories} // [] };
    print $json->encode({ name => $pdb->{name}, creator => $pdb->{creator},
                          categories => \@cats,
                          records => [ map { out_record($_) } @{ $pdb->{records} } ] });
} elsif ($cmd eq 'write') {
    my $spec = $json->decode(do { local $/; <STDIN> });
    my $pdb = $spec->{kind} eq 'todo' ? Palm::ToDo->new
            : Palm::Datebook->new({ app => $spec->{kind} eq 'calendar' ? 'Calendar' : 'DateBook' });
    my $i = 0;
    for my $name (@{ $spec->{categories} // [] }) {
        $pdb->{appinfo}{categories}[$i] = { name => $name, id => $i, renamed => 0 };
        $i++;
    }
    $pdb->{uniqueIDseed} = $spec->{seed} // 0;
    push @{ $pdb->{records} }, in_record($pdb, $_) for @{ $spec->{records} };
    $pdb->Write($file);
} elsif ($cmd eq 'edit') {
    my $spec = $json->decode(do { local $/; <STDIN> });
    my $pdb = Palm::PDB->new;
    $pdb->Load($file);
    my %by = map { $_->{id} => $_ } @{ $pdb->{records} };
    while (my ($id, $fields) = each %{ $spec->{set} // {} }) {
        my $r = $by{$id} or die "no record $id";
        while (my ($k, $v) = each %$fields) {
            if (defined $v) { $r->{$k} = $v } else { delete $r->{$k} }
        }
        $r->{attributes}{dirty} = 1;
    }
    for my $id (@{ $spec->{delete} // [] }, @{ $spec->{archive} // [] }) {
        my $r = $by{$id} or die "no record $id";
        $r->{attributes}{expunged} = 1;
        $r->{attributes}{dirty} = 1;
    }
    $by{$_}{attributes}{archive} = 1 for @{ $spec->{archive} // [] };
    for my $h (@{ $spec->{add} // [] }) {
        my $r = in_record($pdb, $h);
        $r->{attributes}{dirty} = 1;
        $pdb->append_Record($r);
    }
    $pdb->Write($file);
} else {
    die "usage: oracle.pl read|write|edit FILE\n";
}
