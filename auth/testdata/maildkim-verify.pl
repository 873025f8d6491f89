#!/usr/bin/perl
# Cross-check helper for dkim_corpus_test.go: verifies each message named
# after the zone file with Mail::DKIM (Debian's libmail-dkim-perl),
# answering key lookups from the zone file's "name TXT-value" lines (a name
# not listed is NXDOMAIN). Prints "FILE RESULT DETAIL" per message.
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my $zonefile = shift @ARGV or die "usage: $0 ZONE MESSAGE...\n";
my %zone;
open my $zf, '<', $zonefile or die "$zonefile: $!\n";
while ( my $line = <$zf> ) {
    chomp $line;
    next if $line =~ /^\s*(#|$)/;
    my ( $name, $value ) = split /\s+/, $line, 2;
    $zone{ lc $name } = $value;
}
close $zf;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ( $name, $type ) = @_;
        die "unexpected $type lookup for $name\n" unless $type eq 'TXT';
        my $value = $zone{ lc $name };
        if ( !defined $value ) {
            $@ = 'NXDOMAIN';
            return;
        }
        # A TXT string holds at most 255 octets; the verifier joins them.
        return Net::DNS::RR->new(
            name    => $name,
            type    => 'TXT',
            txtdata => [ unpack '(a255)*', $value ],
        );
    };
}

for my $file (@ARGV) {
    open my $mf, '<:raw', $file or die "$file: $!\n";
    my $msg = do { local $/; <$mf> };
    close $mf;
    my $dkim = Mail::DKIM::Verifier->new;
    $dkim->PRINT($msg);
    $dkim->CLOSE;
    ( my $base = $file ) =~ s{.*/}{};
    printf "%s %s %s\n", $base, $dkim->result, $dkim->result_detail // '';
}
