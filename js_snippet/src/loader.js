/*
 * The loader: paste it (minified, see loader.min.js) into every page, with the source's
 * public write key, the collector's address and options. It defines a stub `kanal(...)`
 * that queues calls until kanal.js, loaded async from the collector, replays them.
 */
(function (w, d, key, host, options) {
  var k = (w.kanal =
    w.kanal ||
    function () {
      (k.q = k.q || []).push(arguments);
    });
  k('init', key, host, options);
  var s = d.createElement('script');
  s.async = 1;
  s.src = host + '/kanal.js';
  d.head.appendChild(s);
})(window, document, 'WRITE_KEY', 'https://kanal.example.com', {});
