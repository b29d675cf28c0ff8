/*
 * kanal.js: the web snippet of Kanal.
 *
 * The loader (loader.js) defines a stub `kanal(...)` that queues calls, and loads this
 * file asynchronously from the collector. Here the stub's queue is replayed, and
 * `window.kanal` becomes the real API: `kanal('track', ...)` keeps working, and so does
 * `kanal.track(...)`.
 *
 * Messages are Segment messages, batched and posted as `text/plain` (a CORS "simple"
 * request: no preflight) to `{host}/v1/batch` with the write key in the body.
 *
 * Delivery: a batch that fails (offline, network error, 429, 5xx) goes to a retry queue
 * in storage and is retried with backoff, on `online`, and on the next page load. It is
 * removed from storage only after the collector answered 2xx, and only one tab at a
 * time (Web Locks) sends the stored queue, so stored messages are not sent twice by two
 * tabs. Messages keep their messageId across retries, so the collector's dedupe on
 * (source, messageId) absorbs a retry of a batch whose answer got lost.
 *
 * Privacy:
 *   requireConsent  opt-in: nothing is sent or stored (no cookie, no storage) until
 *                   kanal('consent', true); calls made before are held in memory only.
 *   respectDNT      Do Not Track or Global Privacy Control turn the snippet off.
 *   cookieless      the anonymous id lives in sessionStorage (or memory), no cookie.
 *   kanal('optOut') (or kanal('consent', false)) drops everything and remembers "no".
 *
 * On-site messages and web push live in a second file (src/onsite.js, served as
 * /kanal-onsite.js), loaded only when needed: after consent, this file fetches the
 * site document (/onsite/site/KEY.json, cached by the browser) and loads the on-site
 * code only when it says something is on, when the page is a sign-up confirmation
 * (?kanal_confirm=…), or when the page asks for push (`kanal('push')`). The on-site code
 * reads this file's state through `kanal._o()` and hooks page views through `kanal._p`.
 *
 * Size matters (budget: 2.5 KB gzipped): this is written so that the minifier can
 * shorten it. Helpers are local functions (mangled); browser globals are read through
 * locals; property names that reach the wire are spelled once where possible.
 */
(function (w, d, nav, loc, hist) {
  var stub = w.kanal;
  if (stub && stub.track) return; // loaded twice: keep the first one
  var P = 'kanal_';
  var VERSION = __VERSION__;
  var q = (stub && stub.q) || [];
  var opts = {}; // options given to init
  var key, url, base; // write key, ingest URL, collector
  var storage; // localStorage, or sessionStorage when cookieless
  var consent = 0; // 1 granted, 0 pending (opt-in, nothing stored), -1 refused
  var anonymousId, userId, userHash;
  var queue = []; // messages not sent yet (memory)
  var memStore = '[]'; // the retry queue when storage is unavailable
  var flushTimer, retryTimer, fails = 0, busy;
  var ref = d.referrer; // referrer of the current page view
  var cur; // URL of the last page view
  var ext = [], sited, loaded; // calls for the on-site code; site document asked; loaded

  function now() {
    return new Date().toISOString();
  }

  // RFC 4122 v4 from getRandomValues: crypto.randomUUID needs a secure context.
  function uuid() {
    return '10000000-1000-4000-8000-100000000000'.replace(/[018]/g, function (c) {
      return (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16);
    });
  }

  // Small persisted values (ids, consent): a first-party cookie, mirrored to storage so
  // either one surviving keeps the visitor. `force` writes the consent decision itself.
  function get(name) {
    var m = !opts.cookieless && d.cookie.match('(^|; )' + P + name + '=([^;]*)');
    try {
      return m ? decodeURIComponent(m[2]) : storage.getItem(P + name);
    } catch (e) {}
  }
  function set(name, value, force) {
    if (consent < 1 && !force) return;
    if (!opts.cookieless) {
      d.cookie =
        P + name + '=' + encodeURIComponent(value || '') +
        ';path=/;SameSite=Lax;max-age=' + (value ? 31536e3 : 0) +
        (opts.cookieDomain ? ';domain=' + opts.cookieDomain : '') +
        (loc.protocol == 'https:' ? ';Secure' : '');
    }
    try {
      value ? storage.setItem(P + name, value) : storage.removeItem(P + name);
    } catch (e) {}
  }

  // The retry queue: a JSON list of messages in storage (memory when storage fails).
  function readStore() {
    try {
      return JSON.parse(storage.getItem(P + 'q') || '[]');
    } catch (e) {
      return JSON.parse(memStore);
    }
  }
  function writeStore(list) {
    memStore = JSON.stringify(list.slice(-500));
    try {
      list.length ? storage.setItem(P + 'q', memStore) : storage.removeItem(P + 'q');
    } catch (e) {}
  }
  function keep(batch) {
    writeStore(readStore().concat(batch));
    backoff();
  }

  function campaign() {
    var c = {}, found;
    new URLSearchParams(loc.search).forEach(function (v, k) {
      if (k.indexOf('utm_') == 0) {
        c[(k = k.slice(4)) == 'campaign' ? 'name' : k] = v;
        found = 1;
      }
    });
    return found && c;
  }

  function pageInfo() {
    return {
      path: loc.pathname,
      referrer: ref,
      search: loc.search,
      title: d.title,
      url: loc.href,
    };
  }

  function message(type, fields, options) {
    var msg = Object.assign(
      {
        type: type,
        messageId: uuid(),
        anonymousId: anonymousId,
        timestamp: now(),
        context: {
          page: pageInfo(),
          userAgent: nav.userAgent,
          locale: nav.language,
          timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
          library: { name: 'kanal.js', version: VERSION },
        },
      },
      fields
    );
    var hash = (options && options.userHash) || userHash;
    var utm = campaign();
    if (userId) msg.userId = userId;
    if (hash) msg.context.userHash = hash;
    if (utm) msg.context.campaign = utm;
    if (consent < 0) return;
    queue.push(msg);
    if (consent > 0) {
      queue.length >= (opts.flushAt || 20)
        ? flush()
        : flushTimer || (flushTimer = setTimeout(flush, opts.flushInterval || 500));
    }
  }

  function body(batch) {
    var sentAt = now();
    batch.forEach(function (m) {
      m.sentAt = sentAt;
    });
    return JSON.stringify({ writeKey: key, batch: batch, sentAt: sentAt });
  }

  // Resolves on 2xx, and on 4xx other than 429 (that batch can never succeed: drop it);
  // rejects when it is worth retrying. A string body is sent as text/plain.
  function post(batch) {
    var data = body(batch);
    return fetch(url, { method: 'POST', body: data, keepalive: data.length < 6e4 }).then(
      function (r) {
        if (r.status > 499 || r.status == 429) throw r;
      }
    );
  }

  function flush(unloading) {
    clearTimeout(flushTimer);
    flushTimer = 0;
    if (consent < 1 || !queue.length) return;
    var batch = queue.splice(0);
    if (!nav.onLine) return keep(batch);
    // On page hide the page may be gone before fetch resolves: hand it to the browser.
    // (visibilitychange comes first and uses fetch with keepalive, which also survives.)
    if (unloading && nav.sendBeacon && nav.sendBeacon(url, body(batch))) return;
    post(batch).catch(function () {
      keep(batch);
    });
  }

  function backoff() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(retry, Math.min(6e4, 1e3 * 2 ** fails++) * (1 + Math.random()));
  }

  // Send the stored retry queue, 50 at a time, one tab at a time.
  function retry() {
    if (busy || consent < 1 || !nav.onLine) return;
    function run(lock) {
      // Another tab is sending the stored queue: look again later (it may die midway).
      if (!lock) return backoff();
      var batch = readStore().slice(0, 50);
      if (!batch.length) return;
      busy = 1;
      return post(batch).then(
        function () {
          var sent = {};
          batch.forEach(function (m) {
            sent[m.messageId] = 1;
          });
          // Re-read: other calls may have added to the queue meanwhile.
          writeStore(readStore().filter(function (m) {
            return !sent[m.messageId];
          }));
          busy = fails = 0;
          setTimeout(retry);
        },
        function () {
          busy = 0;
          backoff();
        }
      );
    }
    nav.locks ? nav.locks.request(P + 'q', { ifAvailable: true }, run) : run(1);
  }

  function init(writeKey, host, options) {
    if (key) return;
    key = writeKey;
    opts = options || {};
    url = (base = (host || opts.host).replace(/\/$/, '')) + '/v1/batch';
    try {
      storage = opts.cookieless ? sessionStorage : localStorage;
    } catch (e) {}
    var stored = get('consent');
    consent =
      stored == '0' || (opts.respectDNT && (nav.doNotTrack == '1' || nav.globalPrivacyControl))
        ? -1
        : opts.requireConsent && stored != '1'
          ? 0
          : 1;
    anonymousId = get('aid') || uuid();
    userId = get('uid');
    set('aid', anonymousId);

    // Single-page apps: a new path is a new page view (a changed query or hash is not,
    // so that stripping utm_* with replaceState does not count twice).
    function onUrlChange() {
      setTimeout(function () {
        if (cur && loc.pathname != new URL(cur).pathname) (ref = cur), page();
      });
    }
    ['pushState', 'replaceState'].forEach(function (name) {
      var orig = hist[name];
      hist[name] = function () {
        var r = orig.apply(this, arguments);
        opts.autoPage !== false && onUrlChange();
        return r;
      };
    });
    w.addEventListener('popstate', function () {
      opts.autoPage !== false && onUrlChange();
    });
    w.addEventListener('pagehide', function () {
      flush(1);
    });
    d.addEventListener('visibilitychange', function () {
      d.visibilityState == 'hidden' && flush();
    });
    w.addEventListener('online', retry);
    retry();
    site();
    // After the stub's queue is replayed (an identify there lands on the page view),
    // unless the queue asked for a page view itself.
    opts.autoPage !== false &&
      setTimeout(function () {
        cur || page();
      });
  }

  function page(name, properties) {
    if (typeof name == 'object') (properties = name), (name = 0);
    message('page', { name: name || void 0, properties: Object.assign(pageInfo(), properties) });
    cur = loc.href;
    w.kanal._p && w.kanal._p();
  }

  // The on-site code, once, and only with consent.
  function load() {
    if (consent > 0 && !loaded) {
      loaded = d.createElement('script');
      loaded.src = base + '/kanal-onsite.js';
      d.head.appendChild(loaded);
    }
  }

  // The site document says whether anything on-site is on (the browser caches it).
  function site() {
    consent > 0 &&
      !sited &&
      (sited = fetch(base + '/onsite/site/' + key + '.json')
        .then(function (r) {
          return r.json();
        })
        .then(function (s) {
          (s.on || ext.length || /kanal_confirm=/.test(loc.search)) && load();
        }, Object));
  }

  var api = {
    init: init,
    page: page,
    track: function (event, properties, options) {
      message('track', { event: event, properties: properties || {} }, options);
    },
    // identify(userId?, traits?, {userHash}?): userHash is the hex HMAC-SHA256 of the
    // userId keyed with a secret key of the source, rendered by the shop's backend.
    identify: function (id, traits, options) {
      if (typeof id == 'object') (options = traits), (traits = id), (id = userId);
      if (id != userId) userHash = 0;
      if (options && options.userHash) userHash = options.userHash;
      set('uid', (userId = id));
      message('identify', { traits: traits || {} }, options);
    },
    reset: function () {
      userId = userHash = 0;
      set('uid');
      set('aid', (anonymousId = uuid()));
    },
    // consent(true) grants (opt-in mode), consent(false) refuses and forgets.
    consent: function (granted) {
      consent = granted ? 1 : -1;
      set('consent', granted ? '1' : '0', 1);
      if (granted) {
        set('aid', anonymousId);
        set('uid', userId);
        flush();
        retry();
        site();
      } else {
        queue = [];
        writeStore([]);
        set('aid', 0, 1);
        set('uid', 0, 1);
        // What the on-site code remembered (shown messages, sent forms) goes too.
        try {
          [localStorage, sessionStorage].forEach(function (s) {
            Object.keys(s).forEach(function (k) {
              k.indexOf(P + 'o_') || s.removeItem(k);
            });
          });
        } catch (e) {}
      }
    },
    optIn: function () {
      api.consent(1);
    },
    optOut: function () {
      api.consent(0);
    },
    flush: flush,
    // kanal('push') subscribes this browser to web push (call it from a click);
    // kanal('push', false) ends it. Handled by the on-site code, loaded for it.
    push: function () {
      var args = [].slice.call(arguments);
      w.kanal._x ? w.kanal._x(args) : (ext.push(args), load());
    },
    // What the on-site code needs of this file.
    _o: function () {
      return { k: key, h: base, a: anonymousId, u: userId, x: userHash, c: consent, q: ext };
    },
  };

  var kanal = (w.kanal = function (method) {
    var fn = api[method];
    fn && fn.apply(0, [].slice.call(arguments, 1));
  });
  Object.assign(kanal, api);
  q.forEach(function (args) {
    kanal.apply(0, args);
  });
})(window, document, navigator, location, history);
