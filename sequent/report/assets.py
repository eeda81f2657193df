# ruff: noqa: E501  (the style sheet and the script keep their own line lengths)
"""The page's inline style sheet and script (the page works offline: nothing is fetched).

The script keeps the page's state in the address: ``#filter=WORDS`` filters the timelines and
the grid (a word that is a status or a mark selects the step instances with it; any other word
selects the lines whose name holds it); ``#t…`` and ``#g…`` open the timeline line or graph
panel they name. Timelines are laid out again whenever a group opens or closes, the filter
changes or the zoom changes: the lines shown are stacked and the SVG's height and viewBox
are set to them.
"""

CSS = """
body{font:13px/1.4 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:20px;color:#222}
h1{font-size:20px;margin:0 0 6px}h2{font-size:16px;margin:20px 0 4px}h3{font-size:14px;margin:14px 0 2px}
.facts,.note{color:#555;margin:2px 0 6px}
header.summary{border:1px solid #ccc;border-left:8px solid #888;padding:8px 14px;border-radius:4px}
header.st-success{border-left-color:#3c9a35}header.st-failure{border-left-color:#b00000}
header.st-interrupted{border-left-color:#d9822b}header.st-unfinished{border-left-color:#c9a400}
header h2{font-size:14px;margin:8px 0 2px}
ol.problems{margin:2px 0 4px 18px;padding:0}ol.problems li{margin:1px 0}
ol.problems code{background:#f6f6f6;padding:0 4px;color:#700}
.problem .sym{font-weight:bold}.problem .why{color:#666;font-size:11px}
.tl-link,.log{font-size:11px;margin-left:4px}.nolog{font-size:11px;color:#999}
.badge{font-size:12px;padding:2px 8px;border-radius:10px;vertical-align:middle;border:1px solid #999}
.badge.success{background:#a8e6a1}.badge.failure{background:#f4a3a3}
.badge.unfinished{background:#ffe08a}.badge.interrupted{background:#ffc078}
.chip{display:inline-block;padding:0 6px;margin:0 4px 2px 0;border-radius:8px;
border:1px solid #bbb;font-size:11px;color:#222;text-decoration:none}
a.chip:hover{border-color:#333}
.chip.m-unhandled{border:2px solid #8b0000}.chip.m-handled{border:1px dashed #b03030}
.chip.m-marked{border:2px solid #6a2fb0}
.retry-chip{background:repeating-linear-gradient(45deg,#f4a3a3,#f4a3a3 3px,#fff 3px,#fff 6px)}
.scroll{overflow:auto;border:1px solid #ddd;max-height:80vh}
nav.tools{position:sticky;top:0;background:#fff;padding:4px 0;z-index:2}
#filter{padding:4px 8px;width:520px}#filter-count{color:#555}
.zoom button{font-size:11px;margin-left:4px}
svg.timeline text{font:11px Menlo,Consolas,monospace}
svg.timeline text.axis{fill:#777;font-size:10px}
svg.timeline g.k-container text.label{fill:#444;font-weight:bold}
svg.timeline g.k-iteration text.label{fill:#666;font-style:italic}
svg.timeline g.problem text.label{fill:#8b0000}
svg.timeline text.tog{cursor:pointer;fill:#333}svg.timeline g.group text.label{cursor:pointer}
svg.timeline text.retries{fill:#b00;font-size:10px}
svg.timeline line.tick{stroke:#eee}
svg.timeline .lab{transform:translateX(var(--sx,0px))}
svg.timeline rect.labbg{fill:#fff;opacity:.92}
svg.timeline g.row:target rect.labbg{fill:#ffef9e}
rect.bar{stroke:#555;stroke-width:.6}rect.bar.m-unhandled{stroke:#8b0000;stroke-width:2}
rect.bar.m-handled{stroke:#b03030;stroke-dasharray:3 2;stroke-width:1.2}
rect.bar.m-marked{stroke:#6a2fb0;stroke-width:2}
rect.span{fill:#888}rect.span.s-failure{fill:#b00000}rect.span.s-interrupted{fill:#d9822b}
rect.span.iteration{fill:#bbb}
rect.retry{fill:#f4a3a3;opacity:.75;stroke:#b00;stroke-width:.6;stroke-dasharray:2 1}
path.mark{fill:#aaa}path.mark.recovered{fill:#7fb77e}path.mark.marked{fill:#6a2fb0}path.mark.interrupted{fill:#d9822b}
table.grid{border-collapse:collapse}
table.grid td,table.grid th{border-bottom:1px solid #eee;padding:1px 8px;text-align:left;
vertical-align:top;font-size:12px;white-space:nowrap}
table.grid thead th{position:sticky;top:0;background:#f4f4f4}
table.grid td.att.none{color:#bbb}table.grid td.k-container{font-weight:bold}
table.grid td.m-unhandled{outline:2px solid #8b0000;outline-offset:-2px}
table.grid td.m-handled{outline:1px dashed #b03030;outline-offset:-2px}
table.grid td.m-marked{outline:2px solid #6a2fb0;outline-offset:-2px}
table.grid tr:target td{background:#ffef9e}
table.grid pre{white-space:pre-wrap;max-width:700px;font-size:11px}td.err{white-space:normal}
details.level{margin:4px 0 4px 14px;border-left:2px solid #ddd;padding-left:8px}
details.level.failing{border-left-color:#8b0000}
details.level>summary{cursor:pointer;font-weight:bold}
details.level .counts{font-weight:normal;color:#444;margin-left:6px}
.graph-list ul{margin:2px 0 2px 18px;padding:0}.needs{color:#777;font-size:11px}
"""

SCRIPT = r"""
(function(){
var RUN=JSON.parse(document.getElementById('run-data').textContent), MARKS=RUN.marks;
var MAX=5000, L=330, P=860, R=90;
var box=document.getElementById('filter'), count=document.getElementById('filter-count');
function esc(t){return String(t).replace(/&/g,'&amp;').replace(/</g,'&lt;').replace(/>/g,'&gt;').replace(/"/g,'&quot;');}
function secs(s){return s>=3600?(s/3600).toFixed(1)+' h':s>=60?(s/60).toFixed(1)+' min':s>=1?s.toFixed(2)+' s':(s*1000).toFixed(s<0.01?1:0)+' ms';}
function clock(t){var d=new Date(t*1000), p=function(n,w){return String(n).padStart(w||2,'0');};
  return d.getFullYear()+'-'+p(d.getMonth()+1)+'-'+p(d.getDate())+' '+p(d.getHours())+':'+p(d.getMinutes())+':'+p(d.getSeconds())+'.'+p(d.getMilliseconds(),3);}
function views(){return [].slice.call(document.querySelectorAll('svg.timeline,table.grid')).map(function(el){
  var lines=JSON.parse(el.nextElementSibling.textContent);
  var v={el:el,lines:lines,grid:el.tagName==='TABLE',zoom:1,byId:{}};
  lines.forEach(function(ln,i){v.byId[ln[0]]=i;}); return v;});}
var VIEWS=views();
function parse(q){var f={words:[],text:[]};
  q.toLowerCase().split(/\s+/).forEach(function(w){if(w)(MARKS[w]||RUN.statuses.indexOf(w)>=0?f.words:f.text).push(w);});
  f.active=f.words.length+f.text.length>0;return f;}
function hit(ln,f){
  if(f.words.length&&ln[6]!=='step'&&ln[6]!=='mark')return false;
  for(var i=0;i<f.words.length;i++){var w=f.words[i];if(ln[8]!==w&&ln[9]!==w)return false;}
  var name=ln[7].toLowerCase();
  for(var j=0;j<f.text.length;j++){if(name.indexOf(f.text[j])<0)return false;}
  return ln[6]!=='iteration';}
function visible(v,f){var out=[],shown=[];
  v.lines.forEach(function(ln,i){var vis=f.active?hit(ln,f):(ln[1]<0||(shown[ln[1]]&&v.lines[ln[1]][4]));
    shown[i]=vis;if(vis)out.push(i);});return out;}
function title(ln,t0){var t=[ln[7]||ln[3]];var m=MARKS[ln[9]];t[0]+=': '+(m?m[1]:ln[8]||'iteration');
  if(ln[6]==='step'){t.push('started '+clock(t0+ln[10])+', took '+secs(Math.max(ln[11]-ln[10],0)));}
  (ln[12]||[]).forEach(function(r,k){t.push('try '+(k+1)+': '+clock(t0+r[0])+', '+secs(r[1]-r[0])+': '+r[2]);});
  if(ln[14])t.push(ln[14]);if(ln[13])t.push(ln[13]);return esc(t.join('\n'));}
function drawTimeline(v,f){
  var svg=v.el, h=+svg.dataset.rowHeight, top=+svg.dataset.top, t0=+svg.dataset.t0, span=+svg.dataset.span;
  var plot=P*v.zoom, width=L+plot+R, x=function(a){return (L+a/span*plot).toFixed(1);};
  var w=function(a,b){return Math.max((b-a)/span*plot,2).toFixed(1);};
  var rows=visible(v,f), drawn=rows.slice(0,MAX), out=[], k=Math.round(5*v.zoom);
  for(var i=0;i<=k;i++){var tx=(L+plot*i/k).toFixed(1);
    out.push('<line class="tick" x1="'+tx+'" y1="'+(top-6)+'" x2="'+tx+'" y2="100%"/><text class="axis" x="'+tx+'" y="'+(top-10)+'" text-anchor="middle">+'+secs(span*i/k)+'</text>');}
  drawn.forEach(function(i,n){var ln=v.lines[i], kind=ln[6], tt=title(ln,t0), ind=4+(f.active?0:ln[2]*12);
    var group=i+1<v.lines.length&&v.lines[i+1][1]===i;
    out.push('<g class="row k-'+kind+(group?' group':'')+(ln[5]?' problem':'')+'" id="'+esc(svg.dataset.prefix+'-'+ln[0])+'" data-line="'+i+
      '" data-node="'+esc(ln[7])+'" data-status="'+ln[8]+'" data-mark="'+ln[9]+'" data-kind="'+kind+'" transform="translate(0,'+(top+n*h)+')">'+
      '<g class="lab"><rect class="labbg" width="'+L+'" height="'+h+'"/>'+
      (group&&!f.active?'<text class="tog" x="'+ind+'" y="'+(h-4)+'">'+(ln[4]?'\u25be':'\u25b8')+'</text>':'')+
      '<text class="label" x="'+(ind+12)+'" y="'+(h-4)+'"><title>'+tt+'</title>'+esc(f.active?ln[7]:ln[3])+'</text></g>');
    if(ln[10]===null){}
    else if(kind==='container'||kind==='iteration'){var tall=kind==='container'?4:2;
      out.push('<rect class="span '+kind+' s-'+ln[8]+'" x="'+x(ln[10])+'" y="'+(h/2-tall/2)+'" width="'+w(ln[10],ln[11])+'" height="'+tall+'"><title>'+tt+'</title></rect>');}
    else if(kind==='step'){(ln[12]||[]).forEach(function(r){
        out.push('<rect class="retry" x="'+x(r[0])+'" y="3" width="'+w(r[0],r[1])+'" height="'+(h-6)+'"><title>'+esc(ln[7]+': failed try: '+r[2])+'</title></rect>');});
      out.push('<rect class="bar s-'+ln[8]+' m-'+ln[9]+'" data-node="'+esc(ln[7])+'" x="'+x(ln[10])+'" y="2" width="'+w(ln[10],ln[11])+'" height="'+(h-4)+'" rx="2"><title>'+tt+'</title></rect>');
      if((ln[12]||[]).length)out.push('<text class="retries" x="'+(+x(ln[11])+4)+'" y="'+(h-4)+'">\u00d7'+(ln[12].length+1)+' tries</text>');}
    else out.push('<path class="mark '+ln[9]+' s-'+ln[8]+'" transform="translate('+x(ln[10])+','+(h/2)+')" d="M0 -4l4 4l-4 4l-4 -4z"><title>'+tt+'</title></path>');
    out.push('</g>');});
  if(rows.length>drawn.length)out.push('<text class="more" x="8" y="'+(top+drawn.length*h+12)+'">'+(rows.length-drawn.length)+' more lines: narrow the filter</text>');
  var height=top+drawn.length*h+10+(rows.length>drawn.length?h:0);
  svg.setAttribute('width',width);svg.setAttribute('height',height);svg.setAttribute('viewBox','0 0 '+width+' '+height);
  svg.innerHTML=out.join('');return rows.length;}
function drawGrid(v,f){
  var t0=+v.el.dataset.t0, rows=visible(v,f), drawn=rows.slice(0,MAX), out=[];
  drawn.forEach(function(i){var ln=v.lines[i], group=i+1<v.lines.length&&v.lines[i+1][1]===i, ind=f.active?0:ln[2]*14;
    var cells=(ln[10]||[]).map(function(c){if(!c)return '<td class="att none">\u2013</td>';var m=MARKS[c[0]],txt=[m[0]];
      if(c[0]==='recovered')txt.push('done earlier');else if(c[1]!==null){txt.push(clock(t0+c[1]).slice(11,19));if(c[2]!==null)txt.push(secs(c[2]));}
      if(c[3]>1)txt.push('\u00d7'+c[3]);
      return '<td class="att m-'+c[0]+'" title="'+esc(m[1]+(c[4]?'\n'+c[4]:''))+'">'+esc(txt.join(' '))+'</td>';}).join('');
    var err=ln[12]?'<details><summary>'+esc(ln[11]||'traceback')+'</summary><pre>'+esc(ln[12])+'</pre></details>':esc(ln[11]);
    if(ln[6]==='iteration')cells=RUN.attempts.map(function(){return '<td class="att none"></td>';}).join('');
    out.push('<tr id="i-'+esc(ln[0])+'" data-line="'+i+'" data-node="'+esc(ln[7])+'" data-kind="'+ln[6]+'" data-status="'+ln[8]+'" data-mark="'+ln[9]+'"'+(group?' class="group"':'')+'>'+
      '<td class="name k-'+ln[6]+'" style="padding-left:'+(8+ind)+'px">'+(group&&!f.active?'<span class="tog">'+(ln[4]?'\u25be':'\u25b8')+'</span> ':'')+esc(f.active?ln[7]:ln[3])+'</td>'+cells+'<td class="err">'+err+'</td></tr>');});
  if(rows.length>drawn.length)out.push('<tr><td class="more">'+(rows.length-drawn.length)+' more rows: narrow the filter</td></tr>');
  v.el.tBodies[0].innerHTML=out.join('');return rows.length;}
function draw(v,f){return v.grid?drawGrid(v,f):drawTimeline(v,f);}
function apply(){var f=parse(box.value), n=0;
  VIEWS.forEach(function(v){var k=draw(v,f);if(v.grid)n=k;});
  count.textContent=f.active?(n+' step instances match'):'';}
VIEWS.forEach(function(v){
  v.el.addEventListener('click',function(ev){var g=ev.target.closest('.group');
    if(!g||!(ev.target.closest('g.lab')||ev.target.closest('td.name'))||box.value)return;
    var ln=v.lines[+g.dataset.line];ln[4]=ln[4]?0:1;draw(v,parse(''));});
  if(v.grid)return;
  var sc=v.el.parentNode;
  sc.addEventListener('scroll',function(){v.el.style.setProperty('--sx',sc.scrollLeft+'px');});
  v.el.closest('section').querySelectorAll('button[data-zoom]').forEach(function(b){
    b.addEventListener('click',function(){var z=b.dataset.zoom;v.zoom=z==='fit'?1:Math.max(1,v.zoom*(z==='in'?2:0.5));draw(v,parse(box.value));});});
});
function reveal(id){
  VIEWS.forEach(function(v){var pre=v.grid?'i-':v.el.dataset.prefix+'-';
    if(id.indexOf(pre)!==0||!(id.slice(pre.length) in v.byId))return;
    for(var p=v.lines[v.byId[id.slice(pre.length)]][1];p>=0;p=v.lines[p][1])v.lines[p][4]=1;
    if(box.value){box.value='';apply();}else draw(v,parse(''));});
  var el=document.getElementById(id);if(!el)return;
  for(var d=el.closest('details');d;d=d.parentNode.closest('details'))d.open=true;
  el.scrollIntoView({block:'center'});}
function fromHash(){var h=decodeURIComponent(location.hash.slice(1)), m=/^filter=(.*)$/.exec(h);
  if(m){box.value=m[1];apply();}else if(h)reveal(h);}
box.addEventListener('input',function(){
  history.replaceState(null,'',box.value?'#filter='+encodeURIComponent(box.value):'#');apply();});
window.addEventListener('hashchange',fromHash);
apply();if(location.hash)fromHash();
document.documentElement.dataset.readyMs=Math.round(performance.now());
})();
"""
