/*
 * kanal-onsite.js: on-site messages, sign-up forms and web push, for kanal.js.
 *
 * kanal.js loads this file only when the site document says something is on (or the
 * page confirms a sign-up, or asks for push), and only with consent. It then asks the
 * collector once per page view for this visitor's messages (POST /onsite/pull) and shows
 * each when its moment comes (a delay, a scroll depth, exit intent, else at once), at
 * most as often as the campaign says (per visit in sessionStorage, per day or ever in
 * localStorage; the server checks the person's history too).
 *
 * Safety: every message is drawn inside a shadow root; texts are set with textContent;
 * the body's markup (sanitised by the collector) is parsed into an inert <template> and
 * cleaned again here (no element outside a short list, no on* attribute, no URL that is
 * not http(s), mailto, tel or a path). No inline script, no eval, and styles are
 * constructed stylesheets, so a strict Content-Security-Policy sees no violation.
 * Dialogs are labelled, trap focus while open (modal), close on Escape, and give focus
 * back to where it was.
 */
(function (w, d, nav, loc) {
  var K = w.kanal;
  if (!K || !K._o || K._x) return;
  var P = 'kanal_o_';
  var now = Date.now;
  var shown = {}; // messages shown on this page view (by id)
  var timers = [];
  var stop = []; // listeners of the current page view's triggers, removed on the next
  var TAGS = /^(A|B|BR|DIV|EM|H2|H3|H4|HR|I|IMG|LI|OL|P|S|SMALL|SPAN|STRONG|TABLE|TBODY|TD|TH|THEAD|TR|U|UL|DEL)$/;
  var CSS =
    ':host{all:initial}' +
    '.k{font:15px/1.45 system-ui,sans-serif;color:#1d1d1f;background:#fff;box-sizing:border-box;z-index:2147483000}' +
    '.k *{box-sizing:border-box}' +
    '.ov{position:fixed;inset:0;background:rgba(0,0,0,.45);display:flex;align-items:center;justify-content:center;z-index:2147483000}' +
    '.modal{max-width:28rem;width:calc(100% - 2rem);max-height:calc(100% - 2rem);overflow:auto;border-radius:.75rem;padding:1.5rem;position:relative}' +
    '.banner{position:fixed;left:0;right:0;padding:.75rem 3rem .75rem 1rem;box-shadow:0 0 8px rgba(0,0,0,.2)}' +
    '.top{top:0}.bottom{bottom:0}' +
    '.slide_in{position:fixed;bottom:1rem;width:20rem;max-width:calc(100% - 2rem);padding:1.25rem;border-radius:.75rem;box-shadow:0 4px 24px rgba(0,0,0,.25)}' +
    '.left{left:1rem}.right{right:1rem}' +
    '.slot{position:relative;padding:1rem}' +
    '.x{position:absolute;top:.4rem;right:.5rem;border:0;background:none;font-size:1.5rem;line-height:1;cursor:pointer;padding:.25rem .5rem;color:inherit}' +
    'h2{font-size:1.2rem;margin:0 0 .5rem}img{max-width:100%;height:auto}' +
    '.cta,button[type=submit]{display:inline-block;background:#1d1d1f;color:#fff;border:0;border-radius:.4rem;padding:.55rem 1rem;text-decoration:none;font:inherit;cursor:pointer;margin-top:.5rem}' +
    'label{display:block;margin:.5rem 0}input[type=email],input[type=tel]{display:block;width:100%;padding:.45rem;font:inherit;border:1px solid #888;border-radius:.3rem}' +
    '.hp{position:absolute;left:-9999px;width:1px;height:1px;overflow:hidden}' +
    ':focus-visible{outline:2px solid #0a66c2;outline-offset:2px}';

  function ids(extra) {
    var s = K._o();
    return Object.assign({ k: s.k, a: s.a, u: s.u || void 0, x: s.x || void 0 }, extra);
  }

  // JSON as text/plain (no CORS preflight); rejects with the collector's {code, message}.
  function post(path, body, keep) {
    return fetch(K._o().h + path, {
      method: 'POST',
      body: JSON.stringify(ids(body)),
      keepalive: !!keep,
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw j;
        return j;
      });
    });
  }

  function store(area, name, value) {
    try {
      var s = w[area],
        all = JSON.parse(s.getItem(P + name) || '{}');
      if (value === void 0) return all;
      all[value] = now();
      s.setItem(P + name, JSON.stringify(all));
    } catch (e) {
      return {};
    }
  }

  // Not shown too often in this browser (the server checks the person's history).
  function due(m) {
    var seen = store('localStorage', 'seen')[m.id];
    var f = m.frequency;
    if (m.campaign && store('localStorage', 'done')[m.campaign]) return 0;
    if (f == 'visit') return !store('sessionStorage', 'visit')[m.id];
    if (f == 'day') return !seen || now() - seen > 864e5;
    if (f == 'ever') return !seen;
    return 1;
  }

  function report(m, action, keep) {
    m.ticket && post('/onsite/event', { ticket: m.ticket, action: action, url: loc.href }, keep).catch(Object);
  }

  function el(tag, attrs, text) {
    var e = d.createElement(tag);
    for (var k in attrs || {}) attrs[k] != null && e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }

  function safeUrl(u) {
    return /^(https?:|mailto:|tel:|\/(?!\/)|#)/i.test((u || '').trim());
  }

  // The collector sanitised the body; this is a second pass on an inert template.
  function body(html) {
    var t = d.createElement('template');
    t.innerHTML = html;
    var all = t.content.querySelectorAll('*');
    for (var i = all.length; i--; ) {
      var e = all[i];
      if (!TAGS.test(e.tagName)) {
        e.remove();
        continue;
      }
      [].slice.call(e.attributes).forEach(function (a) {
        var n = a.name;
        if (/^on/i.test(n) || (/^(href|src)$/.test(n) && !safeUrl(a.value)) || n == 'style')
          e.removeAttribute(n);
      });
      if (e.tagName == 'A') e.setAttribute('rel', 'noopener noreferrer');
    }
    var div = el('div', { class: 'body' });
    div.appendChild(t.content);
    return div;
  }

  function sheet(root) {
    try {
      var s = new CSSStyleSheet();
      s.replaceSync(CSS);
      root.adoptedStyleSheets = [s];
    } catch (e) {}
  }

  function focusable(box) {
    return [].slice.call(box.querySelectorAll('a[href],button,input:not([tabindex="-1"])'));
  }

  function form(m, f, box) {
    var n = 0;
    var fm = el('form', { novalidate: '' });
    var status = el('p', { role: 'status', 'aria-live': 'polite' });
    function field(type, label, auto) {
      var id = 'k' + ++n;
      var l = el('label', { for: id }, label);
      var i = el('input', { id: id, type: type, name: type, autocomplete: auto, required: '' });
      l.appendChild(i);
      fm.appendChild(l);
      return i;
    }
    var email = f.email && field('email', f.email_label || 'Email', 'email');
    var phone = f.phone && field('tel', f.phone_label || 'Phone', 'tel');
    var c = el('label');
    var box2 = el('input', { type: 'checkbox', required: '' });
    c.appendChild(box2);
    c.appendChild(d.createTextNode(' ' + (f.consent || '')));
    fm.appendChild(c);
    // A field people never see: bots fill it in.
    var hp = el('div', { class: 'hp', 'aria-hidden': 'true' });
    var trap = el('input', { type: 'text', name: 'website', tabindex: '-1', autocomplete: 'off' });
    hp.appendChild(trap);
    fm.appendChild(hp);
    fm.appendChild(el('button', { type: 'submit' }, f.submit || 'Sign up'));
    fm.appendChild(status);
    fm.addEventListener('submit', function (ev) {
      ev.preventDefault();
      if (!box2.checked) return (status.textContent = 'Please tick the box to agree.'), box2.focus();
      status.textContent = '…';
      post('/onsite/form', {
        ticket: m.ticket,
        email: email ? email.value : void 0,
        phone: phone ? phone.value : void 0,
        consent: box2.checked,
        hp: trap.value,
        url: loc.href,
        l: nav.language,
      }).then(
        function (j) {
          store('localStorage', 'done', m.campaign || m.id);
          fm.replaceWith(el('p', { role: 'status' }, j.thanks || f.thanks || 'Thank you! Please check your inbox.'));
          var x = box.querySelector('.x');
          x && x.focus();
        },
        function (j) {
          status.textContent = (j && j.message) || 'Something went wrong; try again.';
        }
      );
    });
    return fm;
  }

  // Draw one message in a shadow root; returns its box (box.close() closes it).
  function draw(m, onclose) {
    var c = m.content || {},
      layout = m.layout,
      back = d.activeElement,
      host,
      slot;
    if (layout == 'slot') {
      slot = d.querySelector('[data-kanal-slot="' + (m.slot || '').replace(/[^\w-]/g, '') + '"]');
      if (!slot) return;
      host = slot.appendChild(el('div'));
    } else host = d.body.appendChild(el('div'));
    var root = host.attachShadow({ mode: 'open' });
    sheet(root);
    var modal = layout == 'modal';
    var box = el('div', {
      class: 'k ' + layout + ' ' + (m.position || (layout == 'banner' ? 'top' : layout == 'slide_in' ? 'right' : '')),
      role: modal ? 'dialog' : 'region',
      'aria-modal': modal ? 'true' : null,
      'aria-label': c.title ? null : 'Message',
      'aria-labelledby': c.title ? 'kt' : null,
      tabindex: '-1',
    });
    function close(how) {
      d.removeEventListener('keydown', key, true);
      host.remove();
      how && report(m, how);
      back && back.focus && modal && back.focus();
      onclose && onclose();
    }
    function key(ev) {
      if (ev.key == 'Escape' && (modal || root.activeElement)) close('dismissed');
      else if (ev.key == 'Tab' && modal) {
        var f = focusable(box),
          first = f[0],
          last = f[f.length - 1],
          at = root.activeElement;
        if (ev.shiftKey ? at == first || !at : at == last || !at) {
          ev.preventDefault();
          (ev.shiftKey ? last : first).focus();
        }
      }
    }
    if (layout != 'slot') {
      var x = el('button', { class: 'x', type: 'button', 'aria-label': 'Close' }, '×');
      x.addEventListener('click', function () {
        close('dismissed');
      });
      box.appendChild(x);
    }
    c.title && box.appendChild(el('h2', { id: 'kt' }, c.title));
    c.image && safeUrl(c.image) && box.appendChild(el('img', { src: c.image, alt: '' }));
    c.body && box.appendChild(body(c.body));
    if (c.button && c.url && safeUrl(c.url)) box.appendChild(el('a', { class: 'cta', href: c.url }, c.button));
    c.form && box.appendChild(form(m, c.form, box));
    box.addEventListener('click', function (ev) {
      var a = ev.target.closest && ev.target.closest('a[href]');
      a && report(m, 'clicked', 1);
    });
    var top = box;
    if (modal) {
      top = el('div', { class: 'ov' });
      top.appendChild(box);
      top.addEventListener('click', function (ev) {
        ev.target == top && close('dismissed');
      });
    }
    root.appendChild(top);
    d.addEventListener('keydown', key, true);
    if (modal) (focusable(box)[1] || focusable(box)[0] || box).focus();
    box.close = close;
    return box;
  }

  function show(m) {
    if (shown[m.id]) return;
    shown[m.id] = 1;
    store('sessionStorage', 'visit', m.id);
    store('localStorage', 'seen', m.id);
    if (m.holdout) return report(m, 'held_out');
    draw(m) && report(m, 'shown');
  }

  // Whichever of the message's moments comes first: a delay, a scroll depth, leaving.
  function when(m) {
    var go = function () {
      show(m);
    };
    if (!m.delay && !m.scroll && !m.exit) return go();
    if (m.delay) timers.push(setTimeout(go, m.delay));
    function on(target, type, fn) {
      target.addEventListener(type, fn, { passive: true });
      stop.push(function () {
        target.removeEventListener(type, fn);
      });
    }
    m.scroll &&
      on(w, 'scroll', function () {
        var e = d.documentElement;
        (w.scrollY + w.innerHeight) / e.scrollHeight * 100 >= m.scroll && go();
      });
    m.exit &&
      on(d, 'mouseout', function (ev) {
        !ev.relatedTarget && ev.clientY <= 0 && go();
      });
  }

  function pull() {
    timers.forEach(clearTimeout);
    stop.forEach(function (f) {
      f();
    });
    timers = [];
    stop = [];
    shown = {};
    post('/onsite/pull', { url: loc.href, l: nav.language }).then(function (j) {
      (j.messages || []).forEach(function (m) {
        due(m) && when(m);
      });
    }, Object);
  }

  // A sign-up confirmation link opened on the shop's page: confirm with a click.
  function confirmLink() {
    var t = new URLSearchParams(loc.search).get('kanal_confirm');
    if (!t) return;
    var box = draw({ id: 'confirm', layout: 'modal', content: { title: 'Confirm your subscription' } });
    var b = el('button', { type: 'submit' }, 'Confirm');
    var p = el('p', { role: 'status', 'aria-live': 'polite' });
    box.appendChild(b);
    box.appendChild(p);
    b.focus();
    b.addEventListener('click', function () {
      post('/onsite/confirm', { t: t }).then(
        function (j) {
          b.remove();
          p.textContent = j.state == 'expired' ? 'This link is too old; please sign up again.' : j.state == 'unknown' ? 'This link is not valid.' : 'Thank you: you are subscribed.';
        },
        function () {
          p.textContent = 'Something went wrong; try again.';
        }
      );
    });
  }

  function b64(s) {
    s = (s + '===='.slice(s.length % 4 || 4)).replace(/-/g, '+').replace(/_/g, '/');
    return Uint8Array.from(atob(s), function (ch) {
      return ch.charCodeAt(0);
    });
  }

  // kanal('push'): subscribe this browser (from a click); kanal('push', false): stop.
  function push(args) {
    var off = args[0] === false;
    return fetch(K._o().h + '/onsite/site/' + K._o().k + '.json')
      .then(function (r) {
        return r.json();
      })
      .then(function (s) {
        if (!s.push || !nav.serviceWorker || !w.PushManager) throw Error('push is not available');
        return (off ? Promise.resolve('granted') : Notification.requestPermission()).then(function (p) {
          if (p != 'granted') throw Error('notifications are not allowed');
          return nav.serviceWorker.register(s.push.sw).then(function (reg) {
            return reg.pushManager.getSubscription().then(function (sub) {
              if (off) return sub && post('/onsite/push', { subscription: sub.toJSON(), unsubscribe: true }).then(function () {
                return sub.unsubscribe();
              });
              return (sub || reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64(s.push.key) })).then(function (sub) {
                return post('/onsite/push', { subscription: sub.toJSON() });
              });
            });
          });
        });
      });
  }

  K._x = function (args) {
    args[0] == 'push' && args.shift();
    var done = args[args.length - 1];
    push(args).then(
      function () {
        typeof done == 'function' && done(null);
      },
      function (e) {
        typeof done == 'function' && done(e);
      }
    );
  };
  K._p = pull;
  K._o().q.splice(0).forEach(K._x);
  confirmLink();
  pull();
})(window, document, navigator, location);
