// Independent VietQR decoder for market40's tests: npm vietnam-qr-pay 1.5.1 (MIT).
// Reads one JSON-encoded payload string per line on stdin and writes one JSON object
// per line on stdout with what `new QRPay(payload)` decoded. Absent fields are null.
// It is an oracle, not a validator: see shared/spec/vietqr.md §15 for its blind spots.
'use strict';

const readline = require('node:readline');
const { QRPay } = require('vietnam-qr-pay');

const orNull = (value) => (value === undefined ? null : value);

function decode(payload) {
  const qr = new QRPay(payload);
  return {
    isValid: qr.isValid,
    initMethod: orNull(qr.initMethod),
    guid: orNull(qr.provider.guid),
    service: orNull(qr.provider.service),
    bankBin: orNull(qr.consumer.bankBin),
    bankNumber: orNull(qr.consumer.bankNumber),
    amount: orNull(qr.amount),
    currency: orNull(qr.currency),
    nation: orNull(qr.nation),
    category: orNull(qr.category),
    merchantName: orNull(qr.merchant.name),
    city: orNull(qr.city),
    purpose: orNull(qr.additionalData.purpose),
    billNumber: orNull(qr.additionalData.billNumber),
    crc: orNull(qr.crc),
  };
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (line.trim() === '') return;
  process.stdout.write(JSON.stringify(decode(JSON.parse(line))) + '\n');
});
