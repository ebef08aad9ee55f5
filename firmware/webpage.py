"""The status page's HTML: one page for a phone that polls /api/status every second and
draws the last hour from /api/history in the browser (docs/web.md). Bytes in pieces of at
most 1 KB, written one after another: served without a 5 KB block of heap (under a flood at
the 128 KB budget such a block was not always to be had) and without one long stretch;
imported with each page request and dropped after it (web.py)."""

PARTS = (b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>panelcap</title>
<style>
body{font:16px system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d232a}
main{max-width:560px;margin:auto;padding:10px}
h1{font-size:18px;margin:4px 0 8px}
.card{background:#fff;border-radius:8px;padding:10px 12px;margin:0 0 10px;box-shadow:0 1px 2px #0002}
.big{font-size:34px;font-weight:600}
.bar{height:12px;background:#dde2e8;border-radius:6px;overflow:hidden;margin:6px 0}
.bar div{height:100%;background:#2e8b57}
.over .bar div{background:#c0392b}
table{width:100%;border-collapse:collapse}
td,th{text-align:left;padding:5px 4px;border-top:1px solid #eee;font-size:15px}
th{font-weight:500;color:#667;border:0}
.on{color:#2e8b57}.off{color:#c0392b}.limited{color:#c87f0a}
#alarms li{color:#c0392b}#safe{background:#c0392b;color:#fff}#alarms li.muted{color:#667;list-style:none}
small,.muted{color:#667}
""",
         b"""canvas{width:100%;height:160px}
</style></head><body><main>
<h1>panelcap <small id="control"></small></h1>
<div class="card" id="safe" hidden><b>SAFE MODE: every controllable load is off.</b>
<div id="safe_mode"></div><div>Fix the configuration at the console (USB), then restart.</div></div>
<div class="card" id="power">
<div class="muted">panel power</div>
<div><span class="big" id="total_w">-</span> W of <b id="limit_w">-</b> W
(<span id="limit_source">-</span>)</div>
<div class="bar"><div id="bar" style="width:0"></div></div>
<div>headroom <b id="headroom_w">-</b> W &middot; L1 <b id="leg_a0">-</b> A &middot;
L2 <b id="leg_a1">-</b> A</div>
</div>
<div class="card"><table id="loads"><thead><tr><th>load</th><th>state</th><th>setpoint</th>
<th>held back by</th></tr></thead><tbody></tbody></table></div>
<div class="card"><div class="muted">alarms</div><ul id="alarms"><li>-</li></ul></div>
<div class="card"><div class="muted">last hour: panel power (10 s peaks) and limit, kW</div>
""",
         b"""<canvas id="chart" width="540" height="160"></canvas></div>
<div class="muted">firmware <span id="version">-</span> &middot; up <span id="uptime">-</span>
&middot; last reset <span id="reset_cause">-</span> &middot; <span id="age">connecting</span></div>
</main><script>
var SRC={setpoint:"installer",remote:"command",grid:"grid schedule",subscription:"grid subscription",
emergency:"grid emergency",demand:"demand window",uncontrolled:"installer"};
var WHY={min_off:"min off time",priority:"priority",grid:"grid limit",command:"command",
override:"override",fault:"fault"};
function $(i){return document.getElementById(i)}
function t(i,v){$(i).textContent=v}
function dur(s){var h=Math.floor(s/3600),m=Math.floor(s%3600/60);return h?h+" h "+m+" min":m+" min "+s%60+" s"}
var last=0;
function show(d){
t("total_w",d.valid?d.total_w:"-");t("limit_w",d.limit_w==null?"none":d.limit_w);
t("limit_source",SRC[d.limit_source]||d.limit_source);t("headroom_w",d.headroom_w);
""",
         b"""t("leg_a0",d.leg_a[0].toFixed(1));t("leg_a1",d.leg_a[1].toFixed(1));
t("control",d.safe_mode?"SAFE MODE":d.control);$("safe").hidden=!d.safe_mode;t("safe_mode",d.safe_mode||"");
var f=d.limit_w?Math.min(100,100*d.total_w/d.limit_w):0;$("bar").style.width=f+"%";
$("power").className="card"+(d.limit_w&&d.total_w>d.limit_w?" over":"");
var tb=$("loads").tBodies[0];tb.textContent="";
d.loads.forEach(function(l){var r=tb.insertRow();r.setAttribute("data-load",l.name);
var c=r.insertCell();c.textContent=l.name;
c=r.insertCell();c.textContent=l.state;c.className="state "+l.state;
c=r.insertCell();c.className="setpoint";c.textContent=l.setpoint_a==null?"":l.setpoint_a+" A";
c=r.insertCell();c.className="reason";c.textContent=l.reason?(WHY[l.reason]||l.reason):"";});
var al=$("alarms");al.textContent="";
(d.alarms.length?d.alarms:["none"]).forEach(function(a){var li=document.createElement("li");li.textContent=a;if(!d.alarms.length)li.className="muted";al.appendChild(li)});
""",
         b"""t("version",d.version);t("uptime",dur(d.uptime_s));t("reset_cause",d.reset_cause);
last=Date.now();}
function poll(){fetch("api/status",{cache:"no-store"}).then(function(r){return r.json()})
.then(show).catch(function(){}).then(function(){setTimeout(poll,1000)})}
function age(){t("age",last?"updated "+Math.round((Date.now()-last)/1000)+" s ago":"connecting")}
function chart(h){var c=$("chart"),g=c.getContext("2d"),W=c.width,H=c.height,n=h.points;
g.clearRect(0,0,W,H);if(!n)return;var top=1;
for(var i=0;i<n;i++)top=Math.max(top,h.peak_w[i],h.limit_w[i]);top*=1.1;
var P=3600/h.period_s;function x(i){return W-1-(n-1-i)*(W-1)/(P-1)}function y(w){return H-14-(H-20)*w/top}
g.strokeStyle="#ccc";g.fillStyle="#667";g.font="11px sans-serif";
for(var k=0;k<=top/1000;k+=Math.max(1,Math.ceil(top/4000))){g.beginPath();g.moveTo(0,y(k*1000));g.lineTo(W,y(k*1000));g.stroke();g.fillText(k,2,y(k*1000)-2)}
g.fillText("-60 min",2,H-2);g.fillText("now",W-24,H-2);
""",
         b"""g.strokeStyle="#c0392b";g.beginPath();for(i=0;i<n;i++){var v=h.limit_w[i];if(v)g.lineTo(x(i),y(v));else g.moveTo(x(i),y(0))}g.stroke();
g.strokeStyle="#2e6fb0";g.lineWidth=1.5;g.beginPath();for(i=0;i<n;i++)g.lineTo(x(i),y(h.peak_w[i]));g.stroke();g.lineWidth=1}
function hist(){fetch("api/history",{cache:"no-store"}).then(function(r){return r.json()})
.then(chart).catch(function(){}).then(function(){setTimeout(hist,10000)})}
poll();hist();setInterval(age,1000);
</script></body></html>
""")
