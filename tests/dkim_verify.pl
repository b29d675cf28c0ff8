#!/usr/bin/perl
# Verify the DKIM signatures of the message on standard input with Mail::DKIM (Debian's
# libmail-dkim-perl): an implementation other than the signer's. The public key is given
# on the command line, not looked up in DNS:
#   perl dkim_verify.pl kanal1._domainkey.shop.example 'v=DKIM1; k=rsa; p=MIIB…' < message
# Prints the overall result and one line per signature; exits 0 only on "pass".
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Net::DNS;

my ( $name, $record ) = @ARGV;
die "usage: $0 SELECTOR._domainkey.DOMAIN 'v=DKIM1; k=rsa; p=...'\n" unless defined $record;

{
    no warnings 'redefine';
    *Mail::DKIM::DNS::query = sub {
        my ( $domain, $type ) = @_;
        return () unless lc($domain) eq lc($name) && $type eq 'TXT';
        # A TXT record holds strings of at most 255 octets; verifiers join them.
        my $strings = join ' ', map { qq{"$_"} } unpack( '(a250)*', $record );
        return ( Net::DNS::RR->new("$domain. 300 IN TXT $strings") );
    };
}

my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while ( my $line = <STDIN> ) {
    $line =~ s/\015?\012\z/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
print $dkim->result, "\n";
foreach my $sig ( $dkim->signatures ) {
    print "signature: ", $sig->result, " d=", $sig->domain, " s=", $sig->selector,
      " h=", join( ':', $sig->headerlist ), "\n";
}
exit( $dkim->result eq 'pass' ? 0 : 1 );
