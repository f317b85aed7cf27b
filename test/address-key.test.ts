import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addressKey } from '../src/throttling/address-key.js';

describe('the address key of per-address counts', () => {
  it('when the address is IPv4, or IPv6 carrying an IPv4 address (mapped, NAT64), then it counts as the IPv4 address', () => {
    assert.equal(addressKey('198.51.100.7'), '198.51.100.7');
    assert.equal(addressKey('::ffff:198.51.100.7'), '198.51.100.7');
    assert.equal(addressKey('::FFFF:198.51.100.7'), '198.51.100.7');
    assert.equal(addressKey('64:ff9b::c633:6407'), '198.51.100.7');
    assert.notEqual(addressKey('64:ff9b::c633:6408'), addressKey('64:ff9b::c633:6407'), 'two IPv4 clients behind NAT64 are two');
  });

  it('when the address is IPv6, then it counts by its /64, whatever its spelling or zone', () => {
    const key = addressKey('2001:db8:1:2::1');
    assert.equal(key, '2001:db8:1:2::/64');
    for (const same of ['2001:0DB8:0001:0002:ffff:ffff:ffff:fffe', '2001:db8:1:2:aaaa::', '2001:db8:1:2::9%eth0']) {
      assert.equal(addressKey(same), key, same);
    }
    assert.notEqual(addressKey('2001:db8:1:3::1'), key);
  });

  it('when the address is Teredo, then it counts whole: its /64 is the relay, shared by its clients', () => {
    const a = '2001:0:4136:e378:8000:63bf:3fff:fdd2';
    const b = '2001:0:4136:e378:8000:63bf:3fff:fdd3';
    assert.notEqual(addressKey(a), addressKey(b));
    assert.equal(addressKey(a), addressKey('2001:0000:4136:e378:8000:63bf:3fff:FDD2'));
  });

  it('when there is no address, or something that is none, then "unknown", or the text as it is', () => {
    assert.equal(addressKey(null), 'unknown');
    assert.equal(addressKey(undefined), 'unknown');
    assert.equal(addressKey(''), 'unknown');
    assert.equal(addressKey('not:an:address'), 'not:an:address');
  });
});
